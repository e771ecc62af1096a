"""Benchmark: generate sample exports, load them, build dbt, and print throughput figures.

    python scripts/benchmark.py [--scale medium] [--days 30] [--server URL]

Uses a throw-away database on --server (default: the embedded server) and a temporary landing folder.
Prints figures; asserts nothing."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from referral_pipeline.config import DBT_PROJECT_DIR, DEFAULT_IP_HASH_KEY, Settings
from referral_pipeline.dbt_cli import build_args, dbt_env
from referral_pipeline.entities import ENTITIES
from referral_pipeline.generate import generate
from referral_pipeline.landing import load_partition
from referral_pipeline.rules import load_rules, write_rules
from referral_pipeline.warehouse import ensure_schema, start_embedded


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scale", default="medium", choices=["small", "medium", "large"])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--server", default=None, help="PostgreSQL URL of a server to create the database on")
    args = ap.parse_args()

    server = args.server or start_embedded(Settings.from_env())
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"create database {name}")
    url = psycopg.conninfo.make_conninfo(server, dbname=name)
    try:
        ensure_schema(url)
        with tempfile.TemporaryDirectory() as tmp:
            start = dt.date(2025, 1, 1)
            t = time.perf_counter()
            generate(Path(tmp), start, args.days, scale=args.scale, seed=7, log=lambda m: None)
            print(f"generate  {args.scale} x {args.days} days: {time.perf_counter() - t:8.2f} s")
            rows = 0
            t = time.perf_counter()
            for i in range(args.days):
                day = start + dt.timedelta(days=i)
                for e in ENTITIES:
                    rows += load_partition(
                        url, e, day, tmp, ip_hash_key=DEFAULT_IP_HASH_KEY, log=lambda m: None
                    ).rows_loaded
            secs = time.perf_counter() - t
            print(f"load      {rows} rows in {secs:8.2f} s = {rows / secs:10.0f} rows/s")
        with psycopg.connect(url) as conn:
            write_rules(conn, load_rules(Settings.from_env().rules_file))
        env = {**os.environ, **dbt_env(url)}
        run_date = start + dt.timedelta(days=args.days - 1)
        for label in ("dbt build (first)", "dbt build (again)"):
            t = time.perf_counter()
            proc = subprocess.run(
                [
                    "dbt",
                    *build_args(run_date),
                    "--project-dir",
                    str(DBT_PROJECT_DIR),
                    "--profiles-dir",
                    str(DBT_PROJECT_DIR),
                    "--quiet",
                ],
                env=env,
                capture_output=True,
                text=True,
            )
            status = "ok" if proc.returncode == 0 else f"FAILED ({proc.stdout[-300:]})"
            print(f"{label:<18}: {time.perf_counter() - t:8.2f} s {status}")
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"drop database if exists {name} with (force)")


if __name__ == "__main__":
    main()
