"""Small pure functions that build dbt invocations (arguments and environment); unit-tested."""

from __future__ import annotations

import datetime as dt

from .warehouse import connection_params


def dbt_env(url: str, run_date: dt.date | None = None) -> dict[str, str]:
    """Environment variables read by the dbt project: the connection (profiles.yml), derived from the one
    warehouse URL, and the run date (REFERRAL_RUN_DATE, read by the macro run_date; empty: today).
    The run date is an env var rather than `--vars` so that dbt's partial parsing survives between runs."""
    p = connection_params(url)
    return {
        "REFERRAL_DBT_HOST": p["host"],
        "REFERRAL_DBT_PORT": p["port"],
        "REFERRAL_DBT_USER": p["user"],
        "REFERRAL_DBT_PASSWORD": p["password"],
        "REFERRAL_DBT_DBNAME": p["dbname"],
        "REFERRAL_RUN_DATE": run_date.isoformat() if run_date else "",
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
