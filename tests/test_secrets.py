"""No secret in clear, anywhere mktlab writes or prints.

A unique secret is planted through the config (a tag, a notebook parameter), the tracking
server's URI and credential files in the project; after a sweep of two jobs, it is found in
no file of the project's experiments folder, the server's store and artifacts, or the
terminal output.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from helpers import MKTLAB, ROOT
from servers import mlflow_server


def project_copy(folder: Path, secret: str) -> Path:
    """The project's configs and notebooks in a git repository of their own, with credential files beside them."""
    for part in ("conf", "notebooks"):
        shutil.copytree(ROOT / part, folder / part)
    shutil.copy(ROOT / ".gitignore", folder / ".gitignore")
    git = ["git", "-c", "user.email=test@example.com", "-c", "user.name=test"]
    subprocess.run([*git, "init", "-q"], cwd=folder, check=True)
    subprocess.run([*git, "add", "."], cwd=folder, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "project"], cwd=folder, check=True)
    (folder / ".env").write_text(f"DB_PASSWORD={secret}\n")  # git-ignored
    (folder / "deploy").mkdir()
    (folder / "deploy" / "db-credentials.txt").write_text(f"password: {secret}\n")  # untracked, not ignored
    (folder / "analysis-notes.md").write_text("an untracked note that does belong in the diff\n")
    return folder


def files_holding(folder: Path, secret: str) -> list[str]:
    needle = secret.encode()
    return [str(p) for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.mark.slow
def test_a_planted_secret_is_found_nowhere(tmp_path: Path) -> None:
    secret = f"S3cr3t{uuid.uuid4().hex[:12]}"
    project = project_copy(tmp_path / "project", secret)
    env = {**os.environ, "MKTLAB_ROOT": str(project), "PYTHONUNBUFFERED": "1"}
    with mlflow_server(tmp_path / "server") as url:
        uri = url.replace("http://", f"http://analyst:{secret}@")
        common = ["debug=tiny", "data.subsample=2000", "trainer.progress=false", f"+tags.api_token={secret}",
                  f"params.db_password={secret}", "tracking=server", f"tracking.uri={uri}"]
        # a sweep: its parent, two jobs (each a run of its own, the second in the first one's kernel)
        done = subprocess.run([MKTLAB, "-m", *common, "seed=0,1", f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        outputs = [done.stdout + done.stderr]
        client = MlflowClient(tracking_uri=url)
        runs = client.search_runs([client.get_experiment_by_name("mf").experiment_id])
        assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)  # a sweep's parent and two jobs
        single = next(r for r in runs if r.data.tags.get("mktlab.run_dir") == str(tmp_path / "sweep" / "0"))
        assert single.data.tags["api_token"] == "****"
        diff = client.download_artifacts(single.info.run_id, "provenance/uncommitted.diff", str(tmp_path / "download"))
        text = Path(diff).read_text()
        assert "left out of this diff: deploy/db-credentials.txt (looks like a secret)" in text
        assert "analysis-notes.md" in text and ".env" not in text
    for output in outputs:
        assert secret not in output
        assert "analyst:****@" in output  # the links mktlab prints name the server, masked
    for folder in (project / "experiments", tmp_path / "sweep", tmp_path / "server"):
        assert files_holding(folder, secret) == [], f"the secret is in clear under {folder}"
    hydra_record = tmp_path / "sweep" / "0" / ".hydra" / "config.yaml"
    assert oct(hydra_record.stat().st_mode & 0o777) == "0o600"
