"""Helpers to read the golden example's expected CSVs and compare warehouse/published outputs with them."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import os
from decimal import Decimal
from pathlib import Path

# The golden example's nightly job as two backfill runs; payouts are published by the runs dated 2025-02-01 and
# 2025-03-01, as with daily runs (see docs/decisions.md; the day-by-day equivalence is in test_nightly_runs.py).
RANGES = [(dt.date(2025, 1, 1), dt.date(2025, 2, 1)), (dt.date(2025, 2, 2), dt.date(2025, 3, 1))]
PERIODS = ["2025-01", "2025-02"]


@contextlib.contextmanager
def scoped_env(env: dict[str, str]):
    """Set environment variables for the block, then restore what was there."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def pipeline_env(url: str, landing: Path, exports: Path, rules: Path):
    """The pipeline's settings for the block: warehouse, landing, exports, rules."""
    return scoped_env(
        {
            "REFERRAL_WAREHOUSE_URL": url,
            "REFERRAL_LANDING_URI": str(landing),
            "REFERRAL_EXPORT_URI": str(exports),
            "REFERRAL_RULES_FILE": str(rules),
        }
    )


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def fmt_ts(value: dt.datetime | None) -> str:
    """SPEC section 9 timestamp format: YYYY-MM-DDTHH:MM:SSZ, with .ffffff only when microseconds != 0."""
    if value is None:
        return ""
    v = value.astimezone(dt.UTC)
    return v.strftime("%Y-%m-%dT%H:%M:%S") + (f".{v.microsecond:06d}" if v.microsecond else "") + "Z"


def fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return fmt_ts(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def query_rows(conn, sql: str) -> list[dict[str, str]]:
    cur = conn.execute(sql)
    names = [c.name for c in cur.description]
    return [{n: fmt(v) for n, v in zip(names, row, strict=True)} for row in cur.fetchall()]


def assert_same_rows(
    actual: list[dict],
    expected: list[dict],
    key: tuple[str, ...],
    columns: tuple[str, ...],
    *,
    what: str,
    decimals: dict[str, Decimal] | None = None,
) -> None:
    """Rows keyed by `key` must match on `columns`; numeric columns in `decimals` compare within a tolerance
    (a tolerance of 0 means exact decimal equality)."""
    decimals = decimals or {}
    a = {tuple(r[k] for k in key): r for r in actual}
    e = {tuple(r[k] for k in key): r for r in expected}
    missing, extra = sorted(set(e) - set(a)), sorted(set(a) - set(e))
    problems = []
    if missing:
        problems.append(f"{len(missing)} expected rows missing, e.g. {missing[:5]}")
    if extra:
        problems.append(f"{len(extra)} unexpected rows, e.g. {extra[:5]}")
    for k in sorted(set(a) & set(e)):
        for c in columns:
            av, ev = a[k][c], e[k][c]
            if c in decimals and av != "" and ev != "":
                if abs(Decimal(av) - Decimal(ev)) > decimals[c]:
                    problems.append(f"{k} {c}: got {av}, expected {ev}")
            elif av != ev:
                problems.append(f"{k} {c}: got {av!r}, expected {ev!r}")
    assert not problems, (
        f"{what}: "
        + "; ".join(problems[:25])
        + (f" ... ({len(problems)} problems)" if len(problems) > 25 else "")
    )


def load_days(url: str, landing, first: dt.date, last: dt.date, *, key: str = "test-key") -> None:
    """Load every entity's partition of every day from `first` to `last`, in date order, like nightly runs."""
    from referral_pipeline.entities import ENTITIES
    from referral_pipeline.landing import load_partition

    day = first
    while day <= last:
        for entity in ENTITIES:
            load_partition(url, entity, day, str(landing), ip_hash_key=key, log=lambda _m: None)
        day += dt.timedelta(days=1)


def dbt_build(url: str, work, run_date: dt.date, *, unit_tests: bool = False, full_refresh: bool = False):
    """`dbt build` of the whole project as the nightly run does it (with `full_refresh`, every model rebuilt from
    scratch, incremental ones included), with private target and log folders. Returns the completed process
    (check `returncode`; stdout holds dbt's log)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from referral_pipeline.config import DBT_PROJECT_DIR
    from referral_pipeline.dbt_cli import build_args, dbt_env

    env = {
        **os.environ,
        **dbt_env(url, run_date),
        "DBT_TARGET_PATH": str(Path(work) / "dbt_target"),
        "DBT_LOG_PATH": str(Path(work) / "dbt_logs"),
    }
    args = [
        *build_args(unit_tests=unit_tests, full_refresh=full_refresh),
        "--project-dir",
        str(DBT_PROJECT_DIR),
    ]
    args += ["--profiles-dir", str(DBT_PROJECT_DIR)]
    dbt = Path(sys.executable).with_name("dbt")
    return subprocess.run([str(dbt), *args], cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True)
