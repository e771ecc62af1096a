"""The cached dbt project and its manifest.

The project's files are read-only (they ship inside the installed package); dbt's target folder and log live
under the data folder (`Settings.dbt_target_dir`). The manifest is (re)parsed there when the project's files
change, so `dagster dev`, the CLI and the tests always load the definitions from the current models."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import sysconfig
from functools import cache, cached_property
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject
from packaging.version import Version

from referral_pipeline.config import DBT_PROJECT_DIR, Settings

_SOURCE_DIRS = ("models", "macros", "tests", "seeds", "snapshots")


def project_fingerprint(project_dir: Path) -> str:
    """A hash of every file dbt parses (names and contents)."""
    h = hashlib.sha256()
    files = [project_dir / "dbt_project.yml", project_dir / "profiles.yml"]
    for d in _SOURCE_DIRS:
        if (project_dir / d).is_dir():
            files += sorted(
                p for p in (project_dir / d).rglob("*") if p.is_file() and "__pycache__" not in p.parts
            )
    for f in files:
        if f.exists():
            h.update(str(f.relative_to(project_dir)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def dbt_executable() -> str:
    """The `dbt` installed with this interpreter (never whatever `dbt` is first on PATH)."""
    for folder in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        candidate = folder / "dbt"
        if candidate.is_file():
            return str(candidate)
    raise RuntimeError(
        f"dbt is not installed beside {sys.executable}: reinstall referral-pipeline into this environment "
        "(pip install referral-pipeline, or ./scripts/bootstrap.sh in a checkout)"
    )


def dbt_run_env(target_dir: Path) -> dict[str, str]:
    """Environment for any dbt process: artifacts and log under `target_dir`, no usage statistics."""
    return {
        "DBT_TARGET_PATH": str(target_dir),
        "DBT_LOG_PATH": str(target_dir),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


def ensure_manifest(project_dir: Path = DBT_PROJECT_DIR, target_dir: Path | None = None) -> Path:
    """Run `dbt parse` when `target_dir/manifest.json` is missing or older than the project's files."""
    target = target_dir or Settings.from_env().dbt_target_dir
    manifest = target / "manifest.json"
    stamp = target / "manifest.fingerprint"
    fingerprint = project_fingerprint(project_dir)
    if manifest.exists() and stamp.exists() and stamp.read_text() == fingerprint:
        return manifest
    target.mkdir(parents=True, exist_ok=True)
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
        cwd=target,
        env={**os.environ, **dbt_run_env(target)},
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"dbt parse failed for {project_dir}; fix the dbt project and retry:\n{proc.stdout[-4000:]}{proc.stderr[-2000:]}"
        )
    stamp.write_text(fingerprint)
    return manifest


@cache
def dbt_project() -> DbtProject:
    target = Settings.from_env().dbt_target_dir
    ensure_manifest(DBT_PROJECT_DIR, target)
    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target_path=target)


class ReferralDbtCliResource(DbtCliResource):
    """dagster-dbt's CLI resource, told the version of the dbt-core installed with this interpreter (the one
    `dbt_executable()` runs) instead of asking `dbt --version` in a subprocess on every run (~5 s), and without
    the in-process dbt adapter that dagster-dbt builds before every invocation (loading the profile and
    project, about 2 s per run): it serves only features this pipeline does not use (row counts and column
    metadata fetched from the warehouse); dbt itself runs in its own process."""

    @cached_property
    def _cli_version(self) -> Version:
        from dbt.version import __version__

        return Version(__version__)

    def _initialize_dbt_core_adapter(self, args):
        return None
