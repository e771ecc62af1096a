"""The installed command with bad input and bad configuration: one line on stderr, the right exit status
(2 usage, 1 refused or failed), no traceback, and nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

CLI = str(Path(sys.executable).with_name("referral-pipeline"))


def cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("REFERRAL_", "DAGSTER_"))}
    return subprocess.run([CLI, *args], env={**base, **(env or {})}, cwd=cwd, capture_output=True, text=True)


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr + proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    for n in needles:
        assert n in last, (n, last)
    if code == 1:
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    return last


def snapshot(url: str, schemas: tuple[str, ...]) -> dict[str, list]:
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "select table_schema || '.' || table_name from information_schema.tables "
            "where table_schema = any(%s) and table_type = 'BASE TABLE' order by 1",
            (list(schemas),),
        ).fetchall()
        return {t: sorted(map(repr, conn.execute(f"select * from {t}").fetchall())) for (t,) in tables}


@pytest.fixture(scope="module")
def good_run(golden_nightly, tmp_path_factory):
    """The warehouse after the golden example's successful nightly runs, and the settings to reach it."""
    env = {
        **golden_nightly["env"],
        "REFERRAL_DATA_DIR": str(tmp_path_factory.mktemp("data")),
        "REFERRAL_IP_HASH_KEY": os.environ["REFERRAL_IP_HASH_KEY"],
    }
    return {"url": golden_nightly["url"], "env": env}


def test_a_nonexistent_landing_root_fails_before_anything_is_replaced(good_run, tmp_path):
    before = snapshot(good_run["url"], ("raw", "payouts"))
    assert before["raw.crm__partners"], "the good run loaded rows"
    env = {**good_run["env"], "REFERRAL_LANDING_URI": str(tmp_path / "a" / "typo")}
    proc = cli("run", "--date", "2025-02-03", env=env)
    assert_one_line_error(proc, 1, "REFERRAL_LANDING_URI", "does not exist", "typo")
    assert snapshot(good_run["url"], ("raw", "payouts")) == before


def test_a_wrong_warehouse_url_is_one_line(good_run):
    env = {**good_run["env"], "REFERRAL_WAREHOUSE_URL": "postgresql://nobody:secret@127.0.0.1:1/none"}
    for args in (["status"], ["run", "--date", "2025-01-01"], ["payouts", "show", "--period", "2025-01"]):
        proc = cli(*args, env=env)
        last = assert_one_line_error(proc, 1, "REFERRAL_WAREHOUSE_URL", "check the URL")
        assert "secret" not in last  # the password is never printed


def test_the_default_ip_hash_key_is_refused_on_an_external_warehouse(good_run):
    env = {k: v for k, v in good_run["env"].items() if k != "REFERRAL_IP_HASH_KEY"}
    before = snapshot(good_run["url"], ("raw",))
    assert_one_line_error(cli("run", "--date", "2025-01-01", env=env), 1, "REFERRAL_IP_HASH_KEY")
    assert snapshot(good_run["url"], ("raw",)) == before


def test_a_bad_rules_file_is_one_line_naming_it(good_run, tmp_path):
    rules = tmp_path / "rules.yml"
    rules.write_text("program: [not, a, mapping\n")
    before = snapshot(good_run["url"], ("raw", "rules"))
    proc = cli("run", "--date", "2025-01-01", env={**good_run["env"], "REFERRAL_RULES_FILE": str(rules)})
    assert_one_line_error(proc, 1, "rules.yml")
    missing = {**good_run["env"], "REFERRAL_RULES_FILE": str(tmp_path / "nope.yml")}
    assert_one_line_error(
        cli("run", "--date", "2025-01-01", env=missing), 1, "REFERRAL_RULES_FILE", "nope.yml"
    )
    assert snapshot(good_run["url"], ("raw", "rules")) == before


@pytest.mark.parametrize(
    "args, needle",
    [
        (["run", "--date", "2025-02-30"], "expected a date"),
        (["backfill", "--start", "2025-01-01"], "--end"),
        (["generate", "--out", "x", "--start", "2025-01-01", "--days", "0"], "at least 1"),
        (["demo", "--days", "0"], "at least 1"),
        (["demo", "--days", "many"], "whole number"),
        (["payouts", "show", "--period", "2025-13"], "YYYY-MM"),
        (["approve", "EV-1", "--by", " ", "--reason", "x"], "blank"),
        (["dispute", "close", "--deal", "D-1", "--by", "a", "--reason", "b"], "invalid choice"),
        (["override", "D-1", "--by", "a", "--reason", "b"], "--credit"),
        (["ui", "--port", "0"], "at least 1"),
        (["nonsense"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2_and_write_nothing(args, needle, tmp_path):
    proc = cli(*args, env={"REFERRAL_DATA_DIR": str(tmp_path / "data")}, cwd=tmp_path)
    assert_one_line_error(proc, 2, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_refused_controls_exit_1_and_write_nothing(good_run):
    before = snapshot(good_run["url"], ("controls",))
    for args, needle in [
        (["approve", "EV-NOPE", "--by", "a", "--reason", "b"], "EV-NOPE"),
        (["dispute", "open", "--deal", "D-NOPE", "--by", "a", "--reason", "b"], "D-NOPE"),
        (["dispute", "resolve", "--deal", "D-NOPE", "--by", "a", "--reason", "b"], "D-NOPE"),
        (["override", "D-NOPE", "--credit", "P-1=abc", "--by", "a", "--reason", "b"], "P-1=abc"),
    ]:
        assert_one_line_error(cli(*args, env=good_run["env"]), 1, needle)
    assert snapshot(good_run["url"], ("controls",)) == before


def test_demo_refuses_a_configured_deployment_before_touching_anything(good_run, tmp_path):
    before = snapshot(good_run["url"], ("raw", "payouts", "controls"))
    proc = cli("demo", env={**good_run["env"], "REFERRAL_DATA_DIR": str(tmp_path / "data")}, cwd=tmp_path)
    assert_one_line_error(proc, 1, "REFERRAL_WAREHOUSE_URL", "demo")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert snapshot(good_run["url"], ("raw", "payouts", "controls")) == before


def test_demo_refuses_a_data_folder_it_did_not_make(tmp_path):
    data = tmp_path / "data"
    (data / "landing" / "crm").mkdir(parents=True)
    proc = cli("demo", env={"REFERRAL_DATA_DIR": str(data)}, cwd=tmp_path)
    assert_one_line_error(proc, 1, str(data), "--force")
    assert sorted(p.name for p in data.iterdir()) == ["landing"]
