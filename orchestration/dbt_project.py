"""The cached dbt project and its manifest. The manifest is (re)parsed when the project's files change, so
`dagster dev`, the CLI and the tests always load the definitions from the current models."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

from dagster_dbt import DbtProject

from referral_pipeline.config import DBT_PROJECT_DIR

_SOURCE_DIRS = ("models", "macros", "tests", "seeds", "snapshots")


def project_fingerprint(project_dir: Path) -> str:
    """A hash of every file dbt parses (names and contents)."""
    h = hashlib.sha256()
    files = [project_dir / "dbt_project.yml", project_dir / "profiles.yml"]
    for d in _SOURCE_DIRS:
        if (project_dir / d).is_dir():
            files += sorted(p for p in (project_dir / d).rglob("*") if p.is_file())
    for f in files:
        if f.exists():
            h.update(str(f.relative_to(project_dir)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def dbt_executable() -> str:
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


def ensure_manifest(project_dir: Path = DBT_PROJECT_DIR) -> Path:
    """Run `dbt parse` when target/manifest.json is missing or older than the project's files."""
    target = project_dir / "target"
    manifest = target / "manifest.json"
    stamp = target / "manifest.fingerprint"
    fingerprint = project_fingerprint(project_dir)
    if manifest.exists() and stamp.exists() and stamp.read_text() == fingerprint:
        return manifest
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    proc = subprocess.run(
        [
            dbt_executable(),
            "parse",
            "--project-dir",
            str(project_dir),
            "--profiles-dir",
            str(project_dir),
            "--quiet",
        ],
        cwd=project_dir,
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"dbt parse failed for {project_dir}; fix the dbt project and retry:\n{proc.stdout[-4000:]}{proc.stderr[-2000:]}"
        )
    target.mkdir(exist_ok=True)
    stamp.write_text(fingerprint)
    return manifest


@cache
def dbt_project() -> DbtProject:
    ensure_manifest(DBT_PROJECT_DIR)
    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
