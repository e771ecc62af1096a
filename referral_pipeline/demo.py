"""`referral-pipeline demo`: sample exports -> nightly runs over their days -> published payout batches.

The demo runs on the defaults of the data folder (REFERRAL_DATA_DIR, default ./.referral): the embedded
PostgreSQL's database `referral`, `landing/`, `exports/` and the Dagster instance `dagster_home/`. So after
it, every other command (`payouts show`, `status`, `review list`, `ui`, ...) sees what it made, with nothing
to set. It replaces the previous demo's data there; it refuses to replace anything else:
- a REFERRAL_WAREHOUSE_URL, REFERRAL_LANDING_URI or REFERRAL_EXPORT_URI setting (a real deployment);
- a data folder with data not made by the demo, unless `--force`.
Every check runs before anything is touched."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time

import psycopg

from .config import DEFAULT_RULES_FILE, ConfigError, Settings
from .console import Reporter

DEMO_START = dt.date(2025, 1, 1)
MARKER = "demo.json"
_REFUSED_SETTINGS = ("REFERRAL_WAREHOUSE_URL", "REFERRAL_LANDING_URI", "REFERRAL_EXPORT_URI")


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


def check_demo(settings: Settings, start: dt.date, days: int, *, force: bool) -> list[str]:
    """Refuse what the demo must not replace; returns what it will replace (for the user to read)."""
    from .warehouse import embedded_database_has_tables

    if days < 1:
        raise ConfigError(f"--days must be at least 1, got {days}")
    end = start + dt.timedelta(days=days - 1)
    if end >= dt.datetime.now(dt.UTC).date():
        raise ConfigError(
            f"the demo's last day {end} has not ended yet: choose an earlier --start or fewer --days"
        )
    configured = [k for k in _REFUSED_SETTINGS if os.environ.get(k)]
    if configured:
        raise ConfigError(
            f"{', '.join(configured)} set: the demo runs only on the embedded defaults of the data folder and would "
            "not touch a configured deployment; unset it, or use a new REFERRAL_DATA_DIR"
        )
    data = settings.data_dir
    present = [p.name for p in (data / "landing", data / "exports", data / "dagster_home") if p.exists()]
    if embedded_database_has_tables(settings):
        present.insert(0, "warehouse database referral")
    if present and not (data / MARKER).exists() and not force:
        raise ConfigError(
            f"{data} holds data the demo did not make ({', '.join(present)}); the demo would replace it: "
            "use another REFERRAL_DATA_DIR, or pass --force to replace it"
        )
    return present


def run_demo(
    *, start: dt.date = DEMO_START, days: int = 60, scale: str = "small", seed: int = 7, force: bool = False
) -> int:
    from orchestration.run import RunFailed, run_nightly

    from .generate import generate
    from .warehouse import ensure_schema, psql_command, reset_embedded_database

    began = time.monotonic()
    settings = Settings.from_env()
    replaced = check_demo(settings, start, days, force=force)
    end = start + dt.timedelta(days=days - 1)
    data = settings.data_dir
    landing, exports, home = data / "landing", data / "exports", settings.dagster_home
    report = Reporter()
    if replaced:
        report.line(f"demo: replacing the previous demo data in {data}: {', '.join(replaced)}")

    data.mkdir(parents=True, exist_ok=True)
    (data / MARKER).write_text(
        json.dumps({"start": start.isoformat(), "days": days, "scale": scale, "seed": seed})
    )
    report.line("[1/4] embedded warehouse: fresh database `referral`")
    url = reset_embedded_database(settings)
    ensure_schema(url)
    for folder in (landing, exports, home):
        shutil.rmtree(folder, ignore_errors=True)
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(
        "# The Dagster instance of referral-pipeline.\ntelemetry:\n  enabled: false\n"
    )
    # The demo's own process runs on the defaults; the default rules are the program the sample data is made for.
    os.environ.update(DAGSTER_HOME=str(home), REFERRAL_RULES_FILE=str(DEFAULT_RULES_FILE))

    report.line(
        f"[2/4] sample exports: {days} days from {start} to {end} ({scale}, seed {seed}) into {landing}"
    )
    summary_rows = generate(landing, start, days, scale=scale, seed=seed, log=lambda m: None)
    report.line(f"      {summary_rows['files']} files, {sum(summary_rows['rows'].values())} rows")

    ranges = month_ranges(start, end)
    log = settings.log_dir / "demo-runs.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    report.line(f"[3/4] nightly job over {days} days as {len(ranges)} backfill run(s); full log: {log}")
    for i, (lo, hi) in enumerate(ranges, 1):
        t = time.monotonic()
        report.line(f"  run {i}/{len(ranges)}: {lo} .. {hi}")
        try:
            run_nightly(lo, hi, log_level="INFO", output_log=log, report=report)
        except RunFailed as exc:
            raise RunFailed(f"demo run {lo}..{hi} failed: {exc}; full log: {log}") from None
        report.line(f"  run {i}/{len(ranges)} done in {time.monotonic() - t:.0f}s")

    report.line("[4/4] summary")
    report.line(summary(url))
    report.line(
        "\nwhere everything is (no settings needed: every command uses this data folder):\n"
        f"  warehouse:  {psql_command(url)}\n"
        f"  landing:    {landing}\n"
        f"  payouts:    {exports}\n"
        f"  run log:    {log}\n"
        "  next:       referral-pipeline status | payouts show --period YYYY-MM | review list | ui\n"
        f"demo finished in {time.monotonic() - began:.0f}s"
    )
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
