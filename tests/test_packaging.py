"""The product is a normal package: a wheel built from the repository, installed in a fresh environment with
the source tree gone, runs the demo from an empty folder, and the other commands then see what it made."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_python_package_of_the_source_tree_is_packaged():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for top in ("referral_pipeline", "orchestration", "payout_exports")
        for p in (ROOT / top).rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    dbt_folders = {
        ".".join(("referral_pipeline", *d.relative_to(ROOT).parts))
        for d in [ROOT / "dbt_project", *(ROOT / "dbt_project").rglob("*")]
        if d.is_dir() and not {"target", "logs", "dbt_packages", "__pycache__"} & set(d.parts)
    }
    assert listed == found | dbt_folders
    assert config["package-dir"] == {"referral_pipeline.dbt_project": "dbt_project"}
    data = config["package-data"]
    for folder in dbt_folders:  # every file of the dbt project is shipped
        d = ROOT / "dbt_project" / Path(*folder.split(".")[2:])
        suffixes = {p.suffix for p in d.iterdir() if p.is_file()}
        assert {f"*{x}" for x in suffixes} <= set(data.get(folder, [])), folder


def _source_copy(dest: Path) -> Path:
    """The source tree as a clone would have it (tracked and new files, not ignored ones), copied to `dest`."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    for rel in filter(None, files.stdout.split("\0")):
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    return dest


def _site_files(venv: Path) -> set[str]:
    site = next(venv.glob("lib/python3*/site-packages"))
    return {
        str(p.relative_to(site))
        for top in ("referral_pipeline", "orchestration", "payout_exports")
        for p in (site / top).rglob("*")
        if "__pycache__" not in p.parts
    }


@pytest.mark.once
@pytest.mark.slow
def test_the_installed_wheel_runs_the_demo_without_the_source_tree(tmp_path):
    source = _source_copy(tmp_path / "src")
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)],
        check=True,
        capture_output=True,
    )
    shutil.copy(source / "constraints.txt", tmp_path / "constraints.txt")
    shutil.rmtree(source)  # nothing may depend on the checkout
    (wheel,) = dist.glob("referral_pipeline-*.whl")
    unpacked = subprocess.run(["unzip", "-Z1", str(wheel)], capture_output=True, text=True, check=True).stdout
    assert "referral_pipeline/dbt_project/models/marts/fct_attribution.sql" in unpacked

    venv = tmp_path / "venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    install = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "-c",
            str(tmp_path / "constraints.txt"),
            str(wheel),
        ],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    installed = _site_files(venv)

    work = tmp_path / "empty"
    work.mkdir()
    # A clean environment: nothing activated, no project settings, the venv's command called by its path.
    env = {"HOME": os.environ.get("HOME", str(tmp_path)), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    command = str(venv / "bin" / "referral-pipeline")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([command, *args], cwd=work, env=env, capture_output=True, text=True)

    try:
        demo = run("demo", "--days", "32")
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        assert "2025-01 [published]" in demo.stdout
        assert "loaded crm/deals" in demo.stdout and "dbt build (models and tests)" in demo.stdout
        assert "Traceback" not in demo.stdout + demo.stderr and "Warning" not in demo.stderr

        show = run("payouts", "show", "--period", "2025-01")
        assert show.returncode == 0, show.stdout + show.stderr
        assert "batch-2025-01" in show.stdout

        status = run("status")
        assert status.returncode == 0, status.stderr
        assert "last published batch: 2025-01" in status.stdout
        assert "next due period: 2025-02" in status.stdout

        # The finance and analyst outputs of the installed package, on the demo's data.
        statements = run("statements", "--period", "2025-01")
        assert statements.returncode == 0, statements.stdout + statements.stderr
        folder = work / ".referral" / "exports" / "period=2025-01" / "statements"
        assert (folder / "manifest.json").is_file() and list(folder.glob("*.html")), statements.stdout

        report = run("report")
        assert report.returncode == 0, report.stdout + report.stderr
        reports = work / ".referral" / "reports"
        assert (reports / "program-report.html").is_file()
        assert len(list(reports.glob("program-report-*.png"))) == 4, sorted(p.name for p in reports.iterdir())

        assert (work / ".referral" / "dbt" / "target" / "manifest.json").is_file()
        assert _site_files(venv) == installed, "the installed package must never be written to"
    finally:
        run("warehouse", "stop")
