"""The provenance diff holds untracked code, never credentials or data dumps, and says what it left out."""

from __future__ import annotations

import subprocess
from pathlib import Path

from mktlab.tracking import provenance


def repository(folder: Path) -> Path:
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=folder, check=True)
    (folder / ".gitignore").write_text(".env\n")
    (folder / "model.py").write_text("print('tracked')\n")
    subprocess.run([*git, "add", "."], cwd=folder, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "start"], cwd=folder, check=True)
    return folder


def test_secret_looking_ignored_and_large_untracked_files_are_left_out(tmp_path: Path) -> None:
    root = repository(tmp_path)
    (root / ".env").write_text("DB_PASSWORD=ignored-secret\n")
    (root / "config").mkdir()
    (root / "config" / ".env.production").write_text("TOKEN=env-secret\n")
    (root / "keys").mkdir()
    (root / "keys" / "server.pem").write_text("-----BEGIN PRIVATE KEY----- pem-secret\n")
    (root / "aws_credentials.json").write_text('{"key": "json-secret"}\n')
    (root / "dump.csv").write_text("x\n" * 600_000)
    (root / "feature.py").write_text("print('new code')\n")
    (root / "model.py").write_text("print('changed')\n")
    tags, diff = provenance.code_state(root)
    assert tags["mktlab.git.dirty"] == "true"
    for secret in ("ignored-secret", "env-secret", "pem-secret", "json-secret"):
        assert secret not in diff
    assert "print('new code')" in diff and "print('changed')" in diff
    left_out = [line for line in diff.splitlines() if line.startswith("# left out")]
    assert left_out == [
        "# left out of this diff: aws_credentials.json (looks like a secret)",
        "# left out of this diff: config/.env.production (looks like a secret)",
        "# left out of this diff: dump.csv (over 1 MB)",
        "# left out of this diff: keys/server.pem (looks like a secret)",
    ]
    assert ".env\n" in (Path(__file__).resolve().parents[2] / ".gitignore").read_text()  # the project ignores .env itself
