"""Deterministic rendering of a recorded batch (see docs/rules.md, The published files): the same ledger
always gives the same bytes."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

import psycopg

from .ledger import CENT, LINE_COLUMNS, PayoutError
from .periods import format_ts

PAYOUTS_COLUMNS = (
    "batch_id", "period", "partner_id", "partner_name", "line_count", "amount", "payout_currency", "fx_rate",
    "payout_amount",
)  # fmt: skip
LINES_COLUMNS = ("batch_id", "period", *LINE_COLUMNS)
REVIEW_COLUMNS = (*LINES_COLUMNS, "reasons")
DEFERRED_COLUMNS = ("batch_id", "period", "partner_id", "line_count", "balance")
DATA_FILES = ("payouts.csv", "payout_lines.csv", "review_queue.csv", "deferred.csv")
MANIFEST = "manifest.json"
MONEY_COLUMNS = {"amount", "entitlement", "previously_paid", "payout_amount", "balance"}


def format_money(value: Decimal) -> str:
    q = Decimal(value).quantize(CENT)
    if q != value:
        raise PayoutError(f"amount {value} has more than two decimal places")
    return format(q, "f") if q else "0.00"


def format_decimal(value: Decimal) -> str:
    """A plain decimal as stored (no exponent)."""
    return format(Decimal(value), "f")


def _cell(column: str, value: object) -> str:
    if value is None:
        return ""
    if column in MONEY_COLUMNS:
        return format_money(value)  # type: ignore[arg-type]
    if column == "fx_rate":
        return format_decimal(value)  # type: ignore[arg-type]
    if hasattr(value, "tzinfo"):
        return format_ts(value)  # type: ignore[arg-type]
    return str(value)


def render_csv(columns: tuple[str, ...], rows: list[tuple]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(c, v) for c, v in zip(columns, row, strict=True)])
    return buf.getvalue().encode("utf-8")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class RenderedBatch:
    batch_id: str
    period: str
    files: dict[str, bytes]  # data files in publishing order, then manifest.json
    manifest: dict


def _select(
    conn: psycopg.Connection, table: str, columns: tuple[str, ...], batch_id: str, order: str
) -> list:
    cols = ", ".join("b.period" if c == "period" else f"t.{c}" for c in columns)
    return conn.execute(
        f"select {cols} from payouts.{table} t join payouts.batches b using (batch_id) "
        f"where batch_id = %s order by t.{order}",
        (batch_id,),
    ).fetchall()


def render_batch(conn: psycopg.Connection, batch_id: str) -> RenderedBatch:
    """Every file of a recorded batch, from the ledger only; manifest.json last."""
    batch = conn.execute(
        "select period, cutoff, created_at, rules_version, rules_sha256, code_version from payouts.batches "
        "where batch_id = %s",
        (batch_id,),
    ).fetchone()
    if batch is None:
        raise PayoutError(f"batch {batch_id} is not recorded in the ledger")
    period, cut, created_at, rules_version, rules_sha256, code_version = batch
    payouts = _select(conn, "partner_payouts", PAYOUTS_COLUMNS, batch_id, "partner_id")
    tables = {
        "payouts.csv": (PAYOUTS_COLUMNS, payouts),
        "payout_lines.csv": (LINES_COLUMNS, _select(conn, "ledger_lines", LINES_COLUMNS, batch_id, "event_id")),
        "review_queue.csv": (REVIEW_COLUMNS, _select(conn, "review_lines", REVIEW_COLUMNS, batch_id, "event_id")),
        "deferred.csv": (DEFERRED_COLUMNS, _select(conn, "deferred_partners", DEFERRED_COLUMNS, batch_id, "partner_id")),
    }  # fmt: skip
    files = {name: render_csv(columns, rows) for name, (columns, rows) in tables.items()}
    by_currency: dict[str, Decimal] = defaultdict(Decimal)
    program_amount = Decimal(0)
    line_count = 0
    for row in payouts:
        rec = dict(zip(PAYOUTS_COLUMNS, row, strict=True))
        by_currency[rec["payout_currency"]] += rec["payout_amount"]
        program_amount += rec["amount"]
        line_count += rec["line_count"]
    manifest = {
        "batch_id": batch_id,
        "period": period,
        "cutoff": format_ts(cut),
        "created_at": format_ts(created_at),
        "rules_version": rules_version,
        "rules_sha256": rules_sha256,
        "code_version": code_version,
        "files": [
            {"name": name, "rows": len(tables[name][1]), "bytes": len(data), "sha256": sha256(data)}
            for name, data in files.items()
        ],
        "control_totals": {
            "amount_by_currency": {c: format_money(v) for c, v in sorted(by_currency.items())},
            "program_amount": format_money(program_amount),
            "line_count": line_count,
            "partner_count": len(payouts),
        },
    }
    approval = _approval(conn, batch_id)
    if approval is not None:  # only a batch signed off under `batch_approval: required` has one
        manifest["approval"] = approval
    files[MANIFEST] = manifest_bytes(manifest)
    return RenderedBatch(batch_id, period, files, manifest)


def _approval(conn: psycopg.Connection, batch_id: str) -> dict | None:
    """Who approved the batch and when (controls.batch_decisions), or None when it was not signed off."""
    if conn.execute("select to_regclass('controls.batch_decisions') is null").fetchone()[0]:
        return None
    row = conn.execute(
        "select created_by, session_user_name, created_at, reason from controls.batch_decisions "
        "where batch_id = %s and decision = 'approve'",
        (batch_id,),
    ).fetchone()
    if row is None:
        return None
    by, session_user, at, reason = row
    return {"approved_by": by, "database_user": session_user, "approved_at": format_ts(at), "reason": reason}


def manifest_bytes(manifest: dict) -> bytes:
    return (json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
