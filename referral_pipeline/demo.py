"""`referral-pipeline demo`: sample exports → nightly runs over their days → published payout batches.

The demo is self-contained: it uses the embedded PostgreSQL server with its own database `referral_demo`
and the folder `.data/demo/` (landing, exports, Dagster home), all recreated on every demo run, so it never
touches a configured warehouse, landing zone or export location."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import time
from dataclasses import replace

import psycopg

from .config import Settings

DEMO_DB = "referral_demo"


def month_ranges(start: dt.date, end: dt.date) -> list[tuple[dt.date, dt.date]]:
    """Split [start, end] into backfill ranges that each end on the 1st of a month (or on `end`), so that
    every payout period is published by a run dated the 1st, exactly as day-by-day nightly runs would."""
    ranges, lo = [], start
    day = start
    while day <= end:
        if day.day == 1 and day > lo or day == end:
            ranges.append((lo, day))
            lo = day + dt.timedelta(days=1)
        day += dt.timedelta(days=1)
    return ranges


def _demo_warehouse(settings: Settings) -> str:
    from .warehouse import start_embedded

    base = start_embedded(replace(settings, warehouse_url=None))
    admin = base.replace("/referral?", "/postgres?")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"drop database if exists {DEMO_DB} with (force)")
        conn.execute(f"create database {DEMO_DB}")
    return base.replace("/referral?", f"/{DEMO_DB}?")


DEMO_START = dt.date(2025, 1, 1)


def run_demo(*, start: dt.date = DEMO_START, days: int = 60, scale: str = "small", seed: int = 7) -> int:
    from orchestration.run import run_nightly

    from .generate import generate
    from .warehouse import ensure_schema, psql_command

    began = time.monotonic()
    base = Settings.from_env({k: v for k, v in os.environ.items() if k == "REFERRAL_DATA_DIR"})
    demo_dir = base.data_dir / "demo"
    shutil.rmtree(demo_dir, ignore_errors=True)
    landing, exports, home = demo_dir / "landing", demo_dir / "exports", demo_dir / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("# Dagster instance of the demo: runs are stored in this folder.\n")
    run_log = demo_dir / "runs.log"
    end = start + dt.timedelta(days=days - 1)

    print(f"[1/4] starting the embedded warehouse (database {DEMO_DB})", flush=True)
    url = _demo_warehouse(base)
    ensure_schema(url)
    os.environ.update(
        REFERRAL_WAREHOUSE_URL=url,
        REFERRAL_LANDING_URI=str(landing),
        REFERRAL_EXPORT_URI=str(exports),
        DAGSTER_HOME=str(home),
    )
    print(
        f"[2/4] generating {days} days of sample exports ({scale}, seed {seed}) from {start} to {end}",
        flush=True,
    )
    generate(landing, start, days, scale=scale, seed=seed, log=lambda m: None)

    ranges = month_ranges(start, end)
    print(f"[3/4] running the nightly job over {days} days as {len(ranges)} backfill run(s)", flush=True)
    for i, (lo, hi) in enumerate(ranges, 1):
        t = time.monotonic()
        print(f"      run {i}/{len(ranges)}: {lo} .. {hi}", flush=True)
        try:
            run_nightly(lo, hi, log_level="WARNING", output_log=run_log)
        except Exception as exc:
            print(f"error: demo run {lo}..{hi} failed: {exc}\nthe run's log is {run_log}", file=sys.stderr)
            return 1
        print(f"      run {i}/{len(ranges)} done in {time.monotonic() - t:.0f}s", flush=True)

    print("[4/4] summary", flush=True)
    print(summary(url))
    print(f"\nwarehouse:  {psql_command(url)}")
    print(f"landing:    {landing}")
    print(f"payouts:    {exports}")
    print(f"run log:    {run_log}")
    print(
        "dagster UI: "
        f"DAGSTER_HOME={home} REFERRAL_WAREHOUSE_URL='{url}' REFERRAL_LANDING_URI={landing} "
        f"REFERRAL_EXPORT_URI={exports} dagster dev -w workspace.yaml"
    )
    print(f"demo finished in {time.monotonic() - began:.0f}s")
    return 0


def summary(url: str) -> str:
    """Row counts of the raw tables and marts, rejected rows, and the published batches with totals."""
    from .entities import ENTITIES

    lines = ["raw tables (rows loaded / rows rejected):"]
    with psycopg.connect(url) as conn:
        rejected = dict(
            conn.execute("select entity, count(*) from raw.rejected_rows group by entity").fetchall()
        )
        for e in ENTITIES:
            n = conn.execute(f"select count(*) from raw.{e.table}").fetchone()[0]
            lines.append(f"  {e.path:<24} {n:>8} / {rejected.get(e.path, 0)}")
        lines.append("marts (rows):")
        for (table,) in conn.execute(
            "select table_name from information_schema.tables where table_schema = 'marts' order by 1"
        ).fetchall():
            n = conn.execute(f'select count(*) from marts."{table}"').fetchone()[0]
            lines.append(f"  marts.{table:<34} {n:>8}")
        lines.append(
            "payout batches (period: partners, lines, total in program currency, by payout currency; held, deferred):"
        )
        lines += batch_lines(conn) or ["  (none yet: a batch is published once its month has ended)"]
    return "\n".join(lines)


def batch_lines(conn: psycopg.Connection) -> list[str]:
    """One line per recorded payout batch, from the ledger."""
    rows = conn.execute(
        """
        select b.period, b.status, b.partner_count, b.line_count, b.program_amount, b.program_currency,
               b.review_count, b.deferred_count,
               coalesce(string_agg(p.payout_currency || ' ' || p.total, ', ' order by p.payout_currency), '-')
        from payouts.batches b
        left join (
            select batch_id, payout_currency, sum(payout_amount) as total
            from payouts.partner_payouts group by 1, 2
        ) p using (batch_id)
        group by 1, 2, 3, 4, 5, 6, 7, 8
        order by 1
        """
    ).fetchall()
    return [
        f"  {period} [{status}]: {partners} partners, {lines} lines, {amount:.2f} {cur} ({by_cur}); "
        f"{held} held, {deferred} deferred"
        for period, status, partners, lines, amount, cur, held, deferred, by_cur in rows
    ]
