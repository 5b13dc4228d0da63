"""Sweep overhead: N tiny MF jobs through `mktlab -m` against the same fits in one process and plain Papermill.

    .venv/bin/python benchmarks/sweep.py                 # 6 jobs; basic and joblib launchers, reuse on and off
    .venv/bin/python benchmarks/sweep.py --rounds 3      # every side 3 times in turn, the fastest round of each counts
    .venv/bin/python benchmarks/sweep.py --jobs 8 --optuna   # also 30-trial Optuna searches on the default MF data, pruned and not
    .venv/bin/python benchmarks/sweep.py --project /path/to/other/checkout   # its `mktlab -m` beside this one's

Every side runs the same jobs (`debug=tiny trainer.progress=false seed=0..N-1`, one SQLite store per side)
in this sitting, one after another, so they meet the same machine load. Per-job time is a side's
wall time divided by the jobs; the ratios are against the in-process fits (compose + load + fit +
evaluate, nothing logged), whose time excludes the interpreter's start and imports. Each `mktlab -m`
side's time is also split, from its runs' start times, into its start-up (the command's start to its
first job's run: imports, the first kernel, the new store, every job's config validated) and the time
per job after it.

The sides start their runners and kernels afresh (`MKTLAB_KERNEL_IDLE=0`), except the one that the runner on
standby and the kernel the previous command left serve (what a researcher's next command meets): that command
(not timed) runs seeds N..2N-1 first, and the timing starts once its standby runner listens, so the timed jobs
find the runner's and the kernel's imports and the kernel's compiled programs warm but none of their own results
kept (a tiny job's sample, and so its programs' shapes, depends on its seed: they come from the compile cache,
as for the in-process fits).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TINY = ["debug=tiny", "trainer.progress=false"]

IN_PROCESS = """
import json, sys, time
from mktlab import session
from mktlab.models import registry
session.runtime.setup()
jobs = json.loads(sys.argv[1])
start = time.perf_counter()
for overrides in jobs:
    cfg = registry.typed(registry.compose(overrides))
    data = session.load(cfg)
    report = session.evaluate(cfg, session.fit(cfg, data), data)
    report.close_figures()
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def job_overrides(jobs: int) -> list[list[str]]:
    return [["model=mf", *TINY, f"seed={seed}"] for seed in range(jobs)]


COLD = {"MKTLAB_KERNEL_IDLE": "0"}  # every command starts its own kernel and stops it


def stop_what_waits(temp: Path) -> None:
    """Stop the kernels and standby runners left waiting by the commands run with `TMPDIR=temp`."""
    import signal

    for record in [*temp.glob("mktlab-kernels-*/parked/*.json"), *temp.glob("mktlab-kernels-*/standby/*.json")]:
        try:
            os.kill(json.loads(record.read_text())["pid"], signal.SIGKILL)
        except (OSError, ValueError, KeyError):
            pass
        record.unlink(missing_ok=True)
    for socket_file in temp.glob("mktlab-kernels-*/standby/*.sock"):
        socket_file.unlink(missing_ok=True)


def standby_ready(temp: Path, within: float = 60.0) -> None:
    """Wait until the runner a command left on standby (`TMPDIR=temp`) listens: it imports for a few seconds first."""
    deadline = time.monotonic() + within
    while not list(temp.glob("mktlab-kernels-*/standby/*.sock")):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no runner on standby in {temp} after {within:.0f} s")
        time.sleep(0.2)


def timed(command: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env={**os.environ, **(env or {})}, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:6])} ... failed:\n{done.stderr[-3000:]}")
    return seconds


def sweep_command(folder: Path, jobs: int, extra: list[str], *, binary: Path = BIN / "mktlab", first_seed: int = 0) -> list[str]:
    store = [f"tracking.uri=sqlite:///{folder / 'mlflow.db'}", f"tracking.artifact_root={folder / 'artifacts'}"]
    seeds = ",".join(map(str, range(first_seed, first_seed + jobs)))
    return [str(binary), "-m", "model=mf", *TINY, f"seed={seeds}", *store, f"hydra.sweep.dir={folder / 'sweep'}", *extra]


def first_job_started(folder: Path) -> float:
    """When the sweep's first job opened its run (seconds since the epoch), from the side's store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], filter_string="tags.mktlab.job_num != ''")
    return min(run.info.start_time for run in runs) / 1000


def in_process(jobs: int) -> float:
    done = subprocess.run([sys.executable, "-c", IN_PROCESS, json.dumps(job_overrides(jobs))], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds"]


def plain_papermill(folder: Path, jobs: int) -> float:
    """Papermill by hand: a fresh kernel per job, the notebook composing its config from `overrides`."""
    store = [f"tracking.uri=sqlite:///{folder / 'mlflow.db'}", f"tracking.artifact_root={folder / 'artifacts'}"]
    start = time.perf_counter()
    for seed, overrides in enumerate(job_overrides(jobs)):
        timed([str(BIN / "papermill"), str(ROOT / "notebooks" / "mf.ipynb"), str(folder / f"out-{seed}.ipynb"),
               "-y", json.dumps({"overrides": [*overrides, *store]}), "--no-progress-bar"], cwd=folder)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=1, help="time every side this many times in turn; each side's fastest round counts")
    parser.add_argument("--optuna", action="store_true", help="also time a 30-trial Optuna search on the default MF data")
    parser.add_argument("--project", default=None, help="another checkout whose `mktlab -m` is timed beside this one's")
    args = parser.parse_args()
    n = args.jobs
    work = Path(tempfile.mkdtemp(prefix="mktlab-bench-sweep-"))
    jax_cache = os.environ.get("MKTLAB_JAX_CACHE") or str(ROOT / "experiments" / "jax-cache")
    kept = "mktlab -m, basic launcher, the runner and kernel the previous command left"
    parking = {"MKTLAB_KERNEL_IDLE": "120", "TMPDIR": str(work / "tmp")}
    (work / "tmp").mkdir()
    mktlab_sides: dict[str, tuple[list[str], dict[str, str]]] = {
        "mktlab -m, basic launcher, warm kernel reused": ([], COLD),
        kept: ([], parking),
        "mktlab -m, basic launcher, a fresh kernel per job": (["runner.reuse_kernel=false"], COLD),
        "mktlab -m, joblib launcher (2 workers), kernels reused": (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], COLD),
    }
    kept_sides = {kept}
    if args.project:
        other = Path(args.project).resolve()
        # its own code and conf, this checkout's compiled-program cache (a cold cache would time XLA, not the runner)
        its_own = {"PYTHONPATH": str(other / "src"), "MKTLAB_ROOT": str(other), "MKTLAB_JAX_CACHE": jax_cache}
        mktlab_sides[f"mktlab -m of {other.name}, basic launcher"] = ([], {**COLD, **its_own})
        kept_sides.add(f"mktlab -m of {other.name}, what the previous command left")
        mktlab_sides[f"mktlab -m of {other.name}, what the previous command left"] = ([], {**parking, **its_own})
    in_one_process, by_hand = "in one process (compose + load + fit + evaluate)", "plain Papermill by hand (a fresh kernel per job)"
    sides: dict[str, float] = {}  # each side's fastest round
    startups: dict[str, float] = {}  # a `mktlab -m` side's start-up in that round: the command's start to its first job's run
    try:
        for round_number in range(args.rounds):
            print(f"round {round_number + 1} of {args.rounds}", flush=True)
            measured = {in_one_process: (in_process(n), None)}
            print(f"  timing: {in_one_process}: {measured[in_one_process][0]:.1f} s", flush=True)
            for name, (extra, env) in mktlab_sides.items():
                folder = work / f"round{round_number}" / "".join(c if c.isalnum() else "-" for c in name)  # an override value: no brackets
                print(f"  timing: {name}", end="", flush=True)
                if name in kept_sides:  # the previous command, on other seeds, leaves its kernel waiting
                    timed(sweep_command(folder.with_name(folder.name + "-before"), n, extra, first_seed=n), env=env)
                    standby_ready(work / "tmp")
                started = time.time()
                seconds = timed(sweep_command(folder, n, extra), env=env)
                measured[name] = (seconds, first_job_started(folder) - started)
                print(f": {seconds:.1f} s", flush=True)  # every round's time, not only the fastest: the machine's noise in view
                stop_what_waits(work / "tmp")
            folder = work / f"round{round_number}" / "papermill"
            folder.mkdir(parents=True)
            measured[by_hand] = (plain_papermill(folder, n), None)
            print(f"  timing: {by_hand}: {measured[by_hand][0]:.1f} s", flush=True)
            for name, (seconds, startup) in measured.items():
                if seconds < sides.get(name, float("inf")):
                    sides[name] = seconds
                    if startup is not None:
                        startups[name] = startup
        base = sides[in_one_process] / n
        print(f"\n{n} tiny MF jobs (debug=tiny, seeds 0..{n - 1}), the fastest of {args.rounds} round(s) per side;"
              " per job, and as a multiple of the in-process time:")
        for name, seconds in sides.items():
            print(f"  {name:<58} {seconds / n:6.2f} s/job   {seconds / n / base:5.2f}x")
        print("\nThe `mktlab -m` sides split into their start-up and the time per job after it:")
        for name, startup in startups.items():
            after = (sides[name] - startup) / n
            print(f"  {name:<58} start-up {startup:5.1f} s, then {after:5.2f} s/job   {after / base:5.2f}x")
        if args.optuna:
            print("\n30-trial Optuna search on the default MF data (sweep=mf_optuna, joblib launcher, 2 trials at a time):")
            searches = [("this checkout, pruned (sweep=mf_optuna's MedianPruner)", [], {}),
                        ("this checkout, every trial to the end (hydra.sweeper.pruner=null)", ["hydra.sweeper.pruner=null"], {})]
            if args.project:
                other = Path(args.project).resolve()
                searches.append((f"{other.name} (its default MF)", [], {"PYTHONPATH": str(other / "src"), "MKTLAB_ROOT": str(other),
                                 "MKTLAB_JAX_CACHE": jax_cache}))
            for number, (name, extra, env) in enumerate(searches):
                folder = work / f"optuna-{number}"
                store = [f"tracking.uri=sqlite:///{folder / 'mlflow.db'}", f"tracking.artifact_root={folder / 'artifacts'}"]
                seconds = timed([str(BIN / "mktlab"), "-m", "sweep=mf_optuna", *extra, "hydra/launcher=joblib", "trainer.progress=false",
                                 *store, f"hydra.sweep.dir={folder / 'sweep'}"], env={**COLD, **env})
                results = yaml.safe_load((folder / "sweep" / "optimization_results.yaml").read_text())
                best = "none completed" if results["best_value"] is None else f"{results['best_value']:.4f}"
                print(f"  {name:<70} {seconds:6.0f} s ({seconds / 30:.1f} s per trial), best {results['metric']} "
                      f"{best}, {results.get('pruned_trials', 0)} pruned")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
