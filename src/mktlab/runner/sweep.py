"""What a sweep's jobs share: the sweep record, each job's place in it, and job failures.

The sweep callback (`mktlab.runner.callbacks`) opens the sweep's parent MLflow run in the
launcher process and publishes a `SweepRecord` twice: as `mktlab_sweep.json` in the sweep
folder (seen by every job on a shared file system: joblib, submitit, a local Ray runtime)
and in the `MKTLAB_SWEEP` environment variable (inherited by joblib/Ray/submitit workers
started afterwards, and forwarded to Ray cluster workers by `conf/hydra/launcher/ray.yaml`).
A job finds its parent run through `job_tags`, which the runner passes to the run it opens.

Light on purpose: imported by the launcher process, never imports JAX.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from mktlab.config.secrets import mask_uri
from mktlab.tracking.sweeps import JOB_NUM, PARENT, SWEEP_ID, SWEEP_ROLE, SWEPT

RECORD_FILE = "mktlab_sweep.json"
JOB_FILE = "mktlab_job.json"
ENV_VAR = "MKTLAB_SWEEP"



@dataclass(frozen=True)
class SweepRecord:
    """Where a sweep's jobs log and what they vary.

    Attributes:
        sweep_id: readable and unique, e.g. `20260105-141503-a3f9`; tags every child.
        parent_run_id: the sweep's parent MLflow run.
        experiment_id: the parent's experiment.
        tracking_uri: the store the parent lives in (masked in the published copies).
        sweep_dir: Hydra's sweep folder (`hydra.sweep.dir`).
        swept: the config keys the sweep varies, in order.
        launcher_pid: the process that opened the sweep and ends it.
    """

    sweep_id: str
    parent_run_id: str
    experiment_id: str
    tracking_uri: str
    sweep_dir: str
    swept: tuple[str, ...] = ()
    launcher_pid: int = 0  # the process that opened the sweep (and ends it)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "SweepRecord":
        data = json.loads(text)
        return cls(**{**data, "swept": tuple(data["swept"])})

    def publish(self) -> None:
        """Write the record into the sweep folder and the environment of jobs started from now on, the store's
        credentials masked (the jobs reach the store through their own config)."""
        folder = Path(self.sweep_dir)
        folder.mkdir(parents=True, exist_ok=True)
        public = replace(self, tracking_uri=mask_uri(self.tracking_uri)).to_json()
        (folder / RECORD_FILE).write_text(public, encoding="utf-8")
        os.environ[ENV_VAR] = public


class JobInterrupted(RuntimeError):
    """A sweep job's run was interrupted (Ctrl-C, SIGTERM) and recorded KILLED: the sweep stops."""


@dataclass
class JobFailure:
    """Stands in for the return value of a sweep job that raised (see `SweepCallback.on_job_end`).

    Attributes:
        job_num: Hydra's job number.
        overrides: the job's overrides.
        error: one paragraph naming what went wrong.
        notebook: the job's (partial) executed notebook, when one was written.
        interrupted: the job was interrupted (`JobInterrupted`): the sweep stops rather than going on.
    """

    job_num: int
    overrides: list[str] = field(default_factory=list)
    error: str = ""
    notebook: str | None = None
    interrupted: bool = False


def new_sweep_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def read_record(sweep_dir: str | Path) -> SweepRecord | None:
    """The record of the sweep writing into `sweep_dir`: its file there, else `MKTLAB_SWEEP` if it names that folder."""
    path = Path(sweep_dir) / RECORD_FILE
    if path.is_file():
        return SweepRecord.from_json(path.read_text(encoding="utf-8"))
    if os.environ.get(ENV_VAR):
        record = SweepRecord.from_json(os.environ[ENV_VAR])
        if os.path.abspath(record.sweep_dir) == os.path.abspath(sweep_dir):
            return record
    return None


def split_overrides(overrides: Iterable[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Command-line overrides -> (plain ones, [(key, sweep expression)] for sweeps like `a=1,2`)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    plain, swept = [], []
    for text, override in zip(overrides, OverridesParser.create().parse_overrides(list(overrides))):
        if override.is_sweep_override():
            swept.append((override.get_key_element(), text.split("=", 1)[1]))
        else:
            plain.append(text)
    return plain, swept


def sweep_definition(task_overrides: Sequence[str], sweeper_params: Mapping[str, Any] | None) -> tuple[list[str], dict[str, str]]:
    """The overrides every job shares and `{key: expression}` of what the sweep varies.

    `sweeper_params` is `hydra.sweeper.params` (named sweeps); a key swept on the command
    line wins over the same key there, as in Hydra's sweepers.
    """
    common, from_command_line = split_overrides(task_overrides)
    swept = {override_key(str(k)): str(v) for k, v in (sweeper_params or {}).items()}
    swept.update({override_key(k): v for k, v in from_command_line})
    common = [o for o in common if override_key(o) not in swept]
    return common, swept


def override_key(override: str) -> str:
    """`+optim.lr=0.1` -> `optim.lr`."""
    return override.split("=", 1)[0].lstrip("+~")


def job_run_name(overrides: Sequence[str], swept: Sequence[str]) -> str:
    """A child run's name: its overrides of the swept keys (all its overrides if none match)."""
    own = [o for o in overrides if override_key(o) in set(swept)]
    return ",".join(own or overrides) or "defaults"


def job_tags(hydra_cfg: Any) -> dict[str, str]:
    """The MLflow tags that make a sweep job's run a child of the sweep's parent run.

    Empty outside a sweep, or when no sweep callback published a record (e.g. a sweep
    started with `hydra.callbacks={}`): the job's run is then a run of its own.

    Args:
        hydra_cfg: the job's `HydraConfig.get()`.
    """
    from hydra.types import RunMode

    if hydra_cfg.mode != RunMode.MULTIRUN:
        return {}
    record = read_record(hydra_cfg.sweep.dir)
    if record is None:
        return {}
    return {
        PARENT: record.parent_run_id,
        SWEEP_ID: record.sweep_id,
        JOB_NUM: str(hydra_cfg.job.num),
        "mlflow.runName": job_run_name(list(hydra_cfg.overrides.task), record.swept),
    }


def write_job_file(output_dir: str | Path, data: Mapping[str, Any]) -> None:
    path = Path(output_dir)
    path.mkdir(parents=True, exist_ok=True)
    (path / JOB_FILE).write_text(json.dumps(dict(data), indent=1), encoding="utf-8")


def read_job_files(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Every job's own record under the sweep folder (jobs write them on a shared file system)."""
    found = []
    for path in sorted(Path(sweep_dir).glob(f"**/{JOB_FILE}")):
        try:
            found.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):  # a job killed mid-write
            continue
    return sorted(found, key=lambda job: int(job.get("job_num", 0)))
