"""Small pure functions that build dbt invocations (arguments and environment); unit-tested."""

from __future__ import annotations

import datetime as dt
import os

from .warehouse import connection_params

# PostgreSQL compiles a query with LLVM (JIT) once its estimated cost passes jit_above_cost. For the nightly's
# queries that compilation takes 0.5-2 s per statement, far more than running them (measured in
# docs/performance.md), and a build runs hundreds of statements: dbt's sessions run with JIT off.
JIT_OFF = "-c jit=off"


def pg_options(current: str | None) -> str:
    """PGOPTIONS for dbt's sessions: the caller's own options, plus JIT off unless they set `jit` themselves."""
    current = (current or "").strip()
    if "jit=" in current.replace(" ", ""):
        return current
    return f"{current} {JIT_OFF}".strip()


def dbt_env(url: str, run_date: dt.date | None = None) -> dict[str, str]:
    """Environment variables read by the dbt project: the connection (profiles.yml), derived from the one
    warehouse URL, and the run date (REFERRAL_RUN_DATE, read by the macro run_date; empty: today).
    The run date is an env var rather than `--vars` so that dbt's partial parsing survives between runs.
    PGOPTIONS turns PostgreSQL's JIT off for dbt's sessions (see pg_options). The real schemas, always: no
    scratch prefix, rules from schema `rules`."""
    p = connection_params(url)
    return {
        "REFERRAL_DBT_HOST": p["host"],
        "REFERRAL_DBT_PORT": p["port"],
        "REFERRAL_DBT_USER": p["user"],
        "REFERRAL_DBT_PASSWORD": p["password"],
        "REFERRAL_DBT_DBNAME": p["dbname"],
        "REFERRAL_RUN_DATE": run_date.isoformat() if run_date else "",
        "PGOPTIONS": pg_options(os.environ.get("PGOPTIONS")),
        # Pinned so that a stray variable in the environment cannot send a nightly's models to the scratch
        # schemas of `simulate`, or make them read its rules (simulate sets both after this).
        "REFERRAL_DBT_SCHEMA_PREFIX": "",
        "REFERRAL_DBT_RULES_SCHEMA": "rules",
    }


def build_args(
    *,
    full_refresh: bool = False,
    select: str | None = None,
    unit_tests: bool = False,
) -> list[str]:
    """`dbt build` as a nightly run does it (its run date goes in the environment: `dbt_env`).

    dbt unit tests check the SQL, not the data: the test suite runs them (unit_tests=True); nightly runs skip them."""
    args = ["build"]
    if full_refresh:
        args.append("--full-refresh")
    if select:
        args += ["--select", select]
    if not unit_tests:
        args += ["--exclude-resource-type", "unit_test"]
    return args
