"""`referral-pipeline status`: what the pipeline has done and what waits on people, from the warehouse and the
last dbt build's results (no Dagster needed)."""

from __future__ import annotations

import datetime as dt
import json

import psycopg

from .config import Settings
from .entities import ENTITIES


def _fmt(ts: dt.datetime | None) -> str:
    return ts.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if ts else "-"


def next_period(last: str | None, first_load: dt.date | None) -> str | None:
    """The next payout period to be recorded: the month after the last recorded batch, else the month of the
    first loaded day."""
    if last:
        year, month = map(int, last.split("-"))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return f"{year:04d}-{month:02d}"
    return first_load.strftime("%Y-%m") if first_load else None


def last_dbt_build(settings: Settings) -> str:
    """The last dbt invocation's time and outcome, from its run_results.json."""
    path = settings.dbt_target_dir / "run_results.json"
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        return "none recorded yet"
    counts: dict[str, int] = {}
    for r in results.get("results", []):
        counts[r.get("status", "?")] = counts.get(r.get("status", "?"), 0) + 1
    failed = sum(counts.get(s, 0) for s in ("error", "fail", "runtime error"))
    at = results.get("metadata", {}).get("generated_at", "?")[:19].replace("T", " ")
    outcome = "FAILED" if failed else "succeeded"
    detail = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    return f"{at} UTC, {outcome} in {results.get('elapsed_time', 0):.0f}s ({detail})"


def status_text(url: str, settings: Settings) -> str:
    with psycopg.connect(url) as conn:
        loads = {
            entity: (day, at, rows, rejected)
            for entity, day, at, rows, rejected in conn.execute(
                """
                select distinct on (entity) entity, partition_date, finished_at, rows_loaded, rows_rejected
                from raw.load_batches order by entity, partition_date desc
                """
            ).fetchall()
        }
        first_load = conn.execute("select min(partition_date) from raw.load_batches").fetchone()[0]
        from payout_exports.ledger import BATCH_STATES, LIVE_BATCHES

        batches = conn.execute(
            "select period, state, published_at, program_amount, program_currency, review_count "
            f"from {BATCH_STATES} b where state <> 'voided' order by period desc limit 1"
        ).fetchall()
        awaiting = conn.execute(
            f"select batch_id, period, created_at from {BATCH_STATES} b where state = 'awaiting_approval' "
            "order by period"
        ).fetchall()
        last_published = conn.execute(
            f"select period, published_at from {LIVE_BATCHES} b where status = 'published' "
            "order by period desc limit 1"
        ).fetchone()
        open_disputes = conn.execute(
            """
            select count(*) from (
                select distinct on (subject_type, subject_id) action from controls.disputes
                order by subject_type, subject_id, dispute_action_id desc
            ) d where action = 'open'
            """
        ).fetchone()[0]

    lines = ["last loaded partition per entity (day, rows loaded / rejected, loaded at):"]
    for e in ENTITIES:
        if e.path in loads:
            day, at, rows, rejected = loads[e.path]
            lines.append(f"  {e.path:<26} dt={day}  {rows:>8} / {rejected:<6} {_fmt(at)}")
        else:
            lines.append(f"  {e.path:<26} never loaded")
    lines.append(f"last dbt build: {last_dbt_build(settings)}")
    if batches:
        period, state, _published_at, amount, currency, held = batches[0]
        lines.append(f"last recorded batch: {period} [{state}], {amount:.2f} {currency}, {held} held line(s)")
    else:
        lines.append("last recorded batch: none yet")
    lines.append(
        f"last published batch: {last_published[0]} at {_fmt(last_published[1])}"
        if last_published
        else "last published batch: none yet"
    )
    for bid, period, at in awaiting:
        lines.append(
            f"awaiting sign-off: {bid} (period {period}, recorded {_fmt(at)}): nothing of it is published and later "
            f"periods wait (referral-pipeline batch show {period})"
        )
    upcoming = next_period(batches[0][0] if batches else None, first_load)
    if upcoming:
        year, month = map(int, upcoming.split("-"))
        due = dt.date(year + (month == 12), month % 12 + 1, 1)
        lines.append(f"next due period: {upcoming} (recorded by the nightly run of {due})")
    else:
        lines.append("next due period: - (nothing loaded yet)")
    held = batches[0][5] if batches else 0
    lines.append(f"open review items: {held} held line(s) in the last batch (referral-pipeline review list)")
    lines.append(f"open disputes: {open_disputes} (referral-pipeline disputes list)")
    return "\n".join(lines)
