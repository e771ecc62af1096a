"""Small pure functions that build dbt invocations (arguments and environment); unit-tested."""

from __future__ import annotations

import datetime as dt
import json

from .warehouse import connection_params


def dbt_env(url: str) -> dict[str, str]:
    """Environment variables read by dbt_project/profiles.yml, derived from the one warehouse URL."""
    p = connection_params(url)
    return {
        "REFERRAL_DBT_HOST": p["host"],
        "REFERRAL_DBT_PORT": p["port"],
        "REFERRAL_DBT_USER": p["user"],
        "REFERRAL_DBT_PASSWORD": p["password"],
        "REFERRAL_DBT_DBNAME": p["dbname"],
    }


def dbt_vars(run_date: dt.date | None) -> str:
    return json.dumps({"run_date": run_date.isoformat() if run_date else None}, sort_keys=True)


def build_args(
    run_date: dt.date | None,
    *,
    full_refresh: bool = False,
    select: str | None = None,
    unit_tests: bool = False,
) -> list[str]:
    """`dbt build` for a nightly run of `run_date` (None: no run date, e.g. a manual full rebuild).

    dbt unit tests check the SQL, not the data: the test suite runs them (unit_tests=True); nightly runs skip them."""
    args = ["build", "--vars", dbt_vars(run_date)]
    if full_refresh:
        args.append("--full-refresh")
    if select:
        args += ["--select", select]
    if not unit_tests:
        args += ["--exclude-resource-type", "unit_test"]
    return args
