"""Publishing recorded batches (data files first, manifest last), signing them off, reconciling and showing them."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import psycopg

from .ledger import (
    BATCH_STATES,
    DEFAULT_INPUTS,
    BatchResult,
    BatchState,
    Inputs,
    PayoutError,
    batch_state,
    batch_states,
    current_batch,
    decide_batch,
    decided_text,
    ensure_ledger_schema,
    record_due_batches,
)
from .periods import format_ts
from .render import DATA_FILES, MANIFEST, RenderedBatch, format_money, render_batch, sha256
from .store import Store, open_store

Log = Callable[[str], object]


def batch_folder(period: str) -> str:
    return f"period={period}"


def _connect(url: str) -> psycopg.Connection:
    conn = psycopg.connect(url)
    conn.execute("set timezone = 'UTC'")
    conn.commit()
    ensure_ledger_schema(conn)
    return conn


def _result(conn: psycopg.Connection, batch_id: str) -> BatchResult:
    row = conn.execute(
        "select batch_id, period, cutoff, status, partner_count, line_count, review_count, deferred_count, "
        "program_amount from payouts.batches where batch_id = %s",
        (batch_id,),
    ).fetchone()
    return BatchResult(*row)


def publish_batch(url: str, export_uri: str | Store, batch_id: str, *, log: Log = print) -> int:
    """Render a recorded batch from the ledger and write its files (manifest last) where they are missing; then
    mark it published. Also finishes a batch whose publishing crashed, with byte-identical files. Returns the
    number of files written (0 when everything was already there). A batch awaiting approval or rejected is
    refused (PayoutError)."""
    store = open_store(export_uri)
    with _connect(url) as conn:
        return _publish(conn, store, batch_id, log)


def _publish(conn: psycopg.Connection, store: Store, batch_id: str, log: Log) -> int:
    state = batch_state(conn, batch_id)
    if state is None:
        raise PayoutError(f"batch {batch_id} is not recorded in the ledger")
    if state.state == "voided":
        raise PayoutError(
            f"{batch_id} was {decided_text(state)}: a rejected batch is void and never published"
        )
    if state.state == "awaiting_approval":
        raise PayoutError(
            f"{batch_id} awaits approval: it is published once approved "
            f"(referral-pipeline batch approve {state.period} --by NAME --reason TEXT)"
        )
    rendered = render_batch(conn, batch_id)
    written = _write(store, rendered, log)
    conn.execute(
        "update payouts.batches set status = 'published', published_at = now() "
        "where batch_id = %s and status in ('recorded', 'awaiting_approval')",
        (batch_id,),
    )
    conn.commit()
    return written


def _write(store: Store, rendered: RenderedBatch, log: Log) -> int:
    folder = batch_folder(rendered.period)
    written = 0
    for name in (*DATA_FILES, MANIFEST):
        if store.create(f"{folder}/{name}", rendered.files[name]):
            written += 1
    where = f"{store.uri.rstrip('/')}/{folder}/"
    log(f"payouts: {rendered.batch_id} published at {where} ({written} files written)")
    return written


def publish_recorded_batches(url: str, export_uri: str | Store, *, log: Log = print) -> list[str]:
    """Publish, oldest first, every batch recorded but not yet published: recorded without sign-off, or approved
    (a batch awaiting approval waits; a rejected one is never published). Returns their batch ids."""
    with _connect(url) as conn:
        pending = [
            r[0]
            for r in conn.execute(
                f"select batch_id from {BATCH_STATES} b where state in ('recorded', 'approved') "
                "order by period, batch_id"
            )
        ]
    for bid in pending:
        publish_batch(url, export_uri, bid, log=log)
    return pending


def batch_results(url: str, batch_ids: list[str]) -> list[BatchResult]:
    """The ledger's record of each batch (period, status, counts, amount), in the order given."""
    if not batch_ids:
        return []
    with _connect(url) as conn:
        return [_result(conn, bid) for bid in batch_ids]


def publish_due(
    url: str,
    run_date: dt.date,
    export_uri: str | Store,
    *,
    code_version: str,
    log: Log = print,
    inputs: Inputs = DEFAULT_INPUTS,
) -> list[BatchResult]:
    """The payout step of the run for run_date: finish any batch left unpublished by a crash, record every due
    period (each month that ended before run_date 00:00 UTC and is not recorded yet), and publish them. Returns
    every batch this call published."""
    published = publish_recorded_batches(url, export_uri, log=log)
    record_due_batches(url, run_date, code_version=code_version, log=log, inputs=inputs)
    published += publish_recorded_batches(url, export_uri, log=log)
    return batch_results(url, published)


# --- checking -----------------------------------------------------------------------------------------------


def _parse_csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def _sum(rows: list[dict[str, str]], column: str, where: str, problems: list[str]) -> Decimal:
    total = Decimal(0)
    for i, row in enumerate(rows, start=2):
        try:
            total += Decimal(row[column])
        except (InvalidOperation, KeyError, TypeError):
            problems.append(f"{where}: line {i}: {column} is not a decimal: {row.get(column)!r}")
    return total


def reconcile_batch(url: str, export_uri: str | Store, batch_id: str) -> list[str]:
    """Problems with a published batch (empty when it reconciles): the manifest and its checksums, the sums of
    payouts.csv and payout_lines.csv against the ledger, and the files against a fresh rendering of the ledger."""
    store = open_store(export_uri)
    problems: list[str] = []
    with _connect(url) as conn:
        try:
            rendered = render_batch(conn, batch_id)
        except PayoutError as exc:
            return [str(exc)]
        ledger_sum, ledger_lines = conn.execute(
            "select coalesce(sum(amount), 0), count(*) from payouts.ledger_lines where batch_id = %s",
            (batch_id,),
        ).fetchone()
        program_amount = conn.execute(
            "select program_amount from payouts.batches where batch_id = %s", (batch_id,)
        ).fetchone()[0]
    folder = batch_folder(rendered.period)
    where = f"{store.uri.rstrip('/')}/{folder}"
    raw_manifest = store.read(f"{folder}/{MANIFEST}")
    if raw_manifest is None:
        return [f"{batch_id}: {where}/{MANIFEST} is missing: the batch is not published"]
    try:
        manifest = json.loads(raw_manifest)
        listed = {f["name"]: f for f in manifest["files"]}
    except (ValueError, KeyError, TypeError) as exc:
        return [f"{batch_id}: {where}/{MANIFEST} is not a valid manifest ({exc})"]
    if raw_manifest != rendered.files[MANIFEST]:
        problems.append(f"{batch_id}: {where}/{MANIFEST} differs from the ledger's rendering")
    files: dict[str, bytes] = {}
    for name in DATA_FILES:
        data = store.read(f"{folder}/{name}")
        entry = listed.get(name)
        if data is None:
            problems.append(f"{batch_id}: {where}/{name} is missing")
            continue
        files[name] = data
        if entry is None:
            problems.append(f"{batch_id}: {name} is not listed in the manifest")
        elif entry.get("sha256") != sha256(data) or entry.get("bytes") != len(data):
            problems.append(f"{batch_id}: {where}/{name} does not match its manifest checksum")
        if data != rendered.files[name]:
            problems.append(f"{batch_id}: {where}/{name} differs from the ledger's rendering")
    if "payouts.csv" in files and "payout_lines.csv" in files:
        payouts = _parse_csv(files["payouts.csv"])
        lines = _parse_csv(files["payout_lines.csv"])
        payouts_sum = _sum(payouts, "amount", f"{where}/payouts.csv", problems)
        lines_sum = _sum(lines, "amount", f"{where}/payout_lines.csv", problems)
        if not payouts_sum == lines_sum == ledger_sum == program_amount:
            problems.append(
                f"{batch_id}: totals differ: payouts.csv {payouts_sum}, payout_lines.csv {lines_sum}, "
                f"ledger lines {ledger_sum}, batch {program_amount}"
            )
        counted = sum(int(p["line_count"]) for p in payouts)
        if not len(lines) == counted == ledger_lines:
            problems.append(
                f"{batch_id}: line counts differ: payout_lines.csv {len(lines)}, payouts.csv {counted}, "
                f"ledger {ledger_lines}"
            )
    return problems


def verify_published(url: str, export_uri: str | Store) -> list[str]:
    """reconcile_batch for every published batch."""
    store = open_store(export_uri)
    with _connect(url) as conn:
        published = [
            r[0]
            for r in conn.execute(
                "select batch_id from payouts.batches where status = 'published' order by period"
            )
        ]
    return [p for bid in published for p in reconcile_batch(url, store, bid)]


def _summary(conn: psycopg.Connection, b: BatchState) -> list[str]:
    """The amounts of a batch: paid per currency, held, deferred (from the ledger)."""
    by_currency = conn.execute(
        "select payout_currency, sum(payout_amount), count(*) from payouts.partner_payouts where batch_id = %s "
        "group by 1 order by 1",
        (b.batch_id,),
    ).fetchall()
    held_sum = conn.execute(
        "select coalesce(sum(amount), 0) from payouts.review_lines where batch_id = %s", (b.batch_id,)
    ).fetchone()[0]
    deferred_sum = conn.execute(
        "select coalesce(sum(balance), 0) from payouts.deferred_partners where batch_id = %s", (b.batch_id,)
    ).fetchone()[0]
    cur = b.program_currency
    out = [
        f"  paid: {b.partner_count} partners, {b.line_count} lines, {format_money(b.program_amount)} {cur}"
    ]
    out += [f"    {c}: {format_money(total)} to {n} partners" for c, total, n in by_currency]
    out += [
        f"  held for review: {b.review_count} lines, {format_money(held_sum)} {cur}",
        f"  deferred below the minimum of {b.minimum_payout} {cur}: {b.deferred_count} partners, "
        f"balance {format_money(deferred_sum)}",
    ]
    return out


def _approve_hint(period: str) -> str:
    return f"referral-pipeline batch approve {period} --by NAME --reason TEXT"


def show_batch(url: str, export_uri: str | Store, period: str) -> tuple[str, bool]:
    """A finance summary of the batch of a period, from the ledger, and the verification of its published files.
    Returns (text, ok): ok is False when the batch is missing, unpublished, or does not verify."""
    store = open_store(export_uri)
    with _connect(url) as conn:
        b = current_batch(conn, period)
        if b is None:
            return f"no payout batch is recorded for period {period}", False
        out = [
            f"batch {b.batch_id} (period {period}, cutoff {format_ts(b.cutoff)})",
            f"  recorded {format_ts(b.created_at)} with rules {b.rules_version}, code {b.code_version}; "
            f"status {b.state}",
            *_summary(conn, b),
        ]
    where = f"{store.uri.rstrip('/')}/{batch_folder(period)}/"
    if b.state != "published":
        out.append(f"  NOT PUBLISHED: no manifest yet at {where}")
        if b.state == "awaiting_approval":
            out.append(f"  awaits approval: referral-pipeline batch show {period}; {_approve_hint(period)}")
        elif b.state == "voided":
            out.append(f"  {decided_text(b)}; void: the next nightly run records period {period} again")
        return "\n".join(out), False
    problems = reconcile_batch(url, store, b.batch_id)
    if problems:
        out.append("  verification FAILED:")
        out += [f"    - {p}" for p in problems]
    else:
        out.append(f"  verified: files at {where} match the manifest and ledger")
    return "\n".join(out), not problems


# --- sign-off (batch_approval: required) --------------------------------------------------------------------


def batch_text(conn: psycopg.Connection, export_uri: str | Store, period: str) -> str | None:
    """`referral-pipeline batch show`: the period's batch, its state and amounts, who recorded it, who approved or
    rejected it and what to do next; earlier (rejected) batches of the period below. None when none is recorded."""
    states = batch_states(conn, period)
    b = current_batch(conn, period)
    if b is None:
        return None
    where = f"{open_store(export_uri).uri.rstrip('/')}/{batch_folder(period)}/"
    label = {
        "recorded": "recorded, not yet published",
        "awaiting_approval": "AWAITING APPROVAL",
        "approved": "approved, publishing not finished",
        "published": "published",
        "voided": "VOIDED (rejected)",
    }[b.state]
    out = [
        f"batch {b.batch_id} (period {period}, cutoff {format_ts(b.cutoff)}): {label}",
        f"  recorded {format_ts(b.created_at)} by the run of {b.run_date} (database user "
        f"{b.recorded_by or 'unknown'}), rules {b.rules_version}, code {b.code_version}",
        *_summary(conn, b),
    ]
    if b.state == "awaiting_approval":
        out += [
            "  sign-off: required and not given yet; nothing is published until it is approved",
            f"    approve (publishes it): {_approve_hint(period)}",
            f"    reject (voids it; the next run records the period again): referral-pipeline batch reject {period} "
            "--by NAME --reason TEXT",
        ]
    elif b.state == "voided":
        out.append(f"  sign-off: {decided_text(b)}")
        out.append(f"  void: never published; the next nightly run records period {period} again")
    elif b.decision:
        out.append(f"  sign-off: {decided_text(b)}")
    else:
        out.append("  sign-off: not required (recorded with batch_approval: none)")
    if b.state == "published":
        out.append(f"  published {format_ts(b.published_at)} at {where}")
    elif b.state in ("recorded", "approved"):
        out.append(
            f"  files not all published yet at {where}: the next nightly run finishes them"
            + (f" (or rerun {_approve_hint(period)})" if b.state == "approved" else "")
        )
    for v in states:
        if v.batch_id != b.batch_id:
            out.append(f"  earlier batch {v.batch_id}: {decided_text(v)} (void)")
    return "\n".join(out)


def can_publish(conn: psycopg.Connection) -> bool:
    """Whether this login may mark a batch published (the payouts group may; finance may not)."""
    return conn.execute("select has_column_privilege('payouts.batches', 'status', 'UPDATE')").fetchone()[0]


@dataclass(frozen=True)
class Decision:
    batch: BatchState  # after the decision
    recorded: bool  # False: an approved batch whose publishing is being finished (no new row)
    files_written: int | None  # None: not published by this call (rejected, or this login may not publish)


def approve_batch(
    conn: psycopg.Connection, export_uri: str | Store, period: str, *, by: str, reason: str, log: Log = print
) -> Decision:
    """Approve the batch of a period that awaits approval (one audited row) and publish it, data files first,
    manifest last, as the payout step would (byte-identical files; the manifest says who approved it and when).
    Rerun after an interrupted publication: no new row, the missing files are written. A login that may not
    mark the batch published (finance) only approves; the next nightly run publishes."""
    batch, recorded = decide_batch(conn, period, "approve", by=by, reason=reason)
    if not can_publish(conn):
        return Decision(batch, recorded, None)
    written = _publish(conn, open_store(export_uri), batch.batch_id, log)
    after = batch_state(conn, batch.batch_id)
    conn.commit()
    assert after is not None
    return Decision(after, recorded, written)


def reject_batch(conn: psycopg.Connection, period: str, *, by: str, reason: str) -> Decision:
    """Reject the batch of a period that awaits approval: one audited row voids it (its ledger rows stay, every
    computation ignores them); the next run records the period again."""
    batch, recorded = decide_batch(conn, period, "reject", by=by, reason=reason)
    return Decision(batch, recorded, None)
