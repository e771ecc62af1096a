"""Control commands for partner managers and finance (SPEC section 8): each writes one append-only, audited
row set (who, when, why) and refuses bad input with a message that says what to do."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import psycopg


class ControlError(ValueError):
    """Refused control input; the message says why and what to do."""


@dataclass(frozen=True)
class Credit:
    partner_id: str
    credit: Decimal


def _actor(by: str, reason: str) -> tuple[str, str]:
    by, reason = (by or "").strip(), (reason or "").strip()
    if not by:
        raise ControlError("--by is required: name the person responsible for this control")
    if not reason:
        raise ControlError("--reason is required: say why, it is kept in the audit trail")
    return by, reason


def _exists(conn: psycopg.Connection, relation: str, column: str, value: str, what: str) -> bool:
    try:
        row = conn.execute(f"select 1 from {relation} where {column} = %s limit 1", (value,)).fetchone()
    except psycopg.errors.UndefinedTable:
        conn.rollback()
        raise ControlError(
            f"{relation} does not exist yet: run the nightly job first (referral-pipeline run --date ...)"
        ) from None
    return row is not None


def approve(conn: psycopg.Connection, event_id: str, *, by: str, reason: str) -> int:
    """Release a reward event from every hold. Returns the approval id."""
    by, reason = _actor(by, reason)
    event_id = event_id.strip()
    if not _exists(conn, "marts.fct_reward_events", "event_id", event_id, "event"):
        raise ControlError(f"unknown event {event_id!r}: see marts.fct_reward_events for event ids")
    with conn.transaction():
        row = conn.execute(
            "insert into controls.approvals (event_id, created_by, reason) values (%s, %s, %s) returning approval_id",
            (event_id, by, reason),
        ).fetchone()
    return row[0]


def _subject(conn: psycopg.Connection, deal_id: str | None, referral_id: str | None) -> tuple[str, str]:
    if bool(deal_id) == bool(referral_id):
        raise ControlError("give exactly one of --deal DEAL_ID or --referral REFERRAL_ID")
    if deal_id:
        if not _exists(conn, "staging.stg_crm__deals", "deal_id", deal_id.strip(), "deal"):
            raise ControlError(f"unknown deal {deal_id!r}: see staging.stg_crm__deals")
        return "deal", deal_id.strip()
    if not _exists(conn, "staging.stg_crm__referrals", "referral_id", referral_id.strip(), "referral"):
        raise ControlError(f"unknown referral {referral_id!r}: see staging.stg_crm__referrals")
    return "referral", referral_id.strip()


def dispute_is_open(conn: psycopg.Connection, subject_type: str, subject_id: str) -> bool:
    row = conn.execute(
        "select action from controls.disputes where subject_type = %s and subject_id = %s "
        "order by dispute_action_id desc limit 1",
        (subject_type, subject_id),
    ).fetchone()
    return bool(row) and row[0] == "open"


def dispute(
    conn: psycopg.Connection,
    action: str,
    *,
    deal_id: str | None = None,
    referral_id: str | None = None,
    by: str,
    reason: str,
) -> int:
    """Open or resolve a dispute on a deal or a referral."""
    if action not in ("open", "resolve"):
        raise ControlError(f"unknown dispute action {action!r}: use open or resolve")
    by, reason = _actor(by, reason)
    subject_type, subject_id = _subject(conn, deal_id, referral_id)
    with conn.transaction():
        conn.execute("lock table controls.disputes in share row exclusive mode")
        is_open = dispute_is_open(conn, subject_type, subject_id)
        if action == "open" and is_open:
            raise ControlError(f"a dispute on {subject_type} {subject_id} is already open")
        if action == "resolve" and not is_open:
            raise ControlError(f"there is no open dispute on {subject_type} {subject_id} to resolve")
        row = conn.execute(
            "insert into controls.disputes (subject_type, subject_id, action, created_by, reason) "
            "values (%s, %s, %s, %s, %s) returning dispute_action_id",
            (subject_type, subject_id, action, by, reason),
        ).fetchone()
    return row[0]


def parse_credits(values: list[str]) -> list[Credit]:
    """`PARTNER_ID=SHARE` items: shares > 0, summing to exactly 1, one per partner."""
    if not values:
        raise ControlError("give at least one --credit PARTNER_ID=SHARE")
    credits: list[Credit] = []
    for v in values:
        partner, sep, share = v.partition("=")
        partner = partner.strip()
        if not sep or not partner:
            raise ControlError(f"--credit {v!r}: expected PARTNER_ID=SHARE, e.g. PTR-0001=0.6")
        try:
            amount = Decimal(share.strip())
        except InvalidOperation:
            raise ControlError(f"--credit {v!r}: {share!r} is not a decimal number") from None
        if not amount.is_finite() or amount <= 0:
            raise ControlError(f"--credit {v!r}: the share must be > 0")
        if any(c.partner_id == partner for c in credits):
            raise ControlError(f"--credit: partner {partner} is given twice")
        credits.append(Credit(partner, amount))
    total = sum((c.credit for c in credits), Decimal(0))
    if total != 1:
        raise ControlError(f"credits must sum to exactly 1, they sum to {total}")
    return credits


def override(conn: psycopg.Connection, deal_id: str, credit_args: list[str], *, by: str, reason: str) -> int:
    """Write an attribution override set for a deal; the latest set wins. Returns the set id."""
    by, reason = _actor(by, reason)
    credits = parse_credits(credit_args)
    deal_id = deal_id.strip()
    if not _exists(conn, "staging.stg_crm__deals", "deal_id", deal_id, "deal"):
        raise ControlError(f"unknown deal {deal_id!r}: see staging.stg_crm__deals")
    for c in credits:
        if not _exists(conn, "staging.stg_crm__partners", "partner_id", c.partner_id, "partner"):
            raise ControlError(f"unknown partner {c.partner_id!r}: see staging.stg_crm__partners")
    with conn.transaction():
        set_id = conn.execute("select nextval('controls.attribution_override_set_seq')").fetchone()[0]
        for c in credits:
            conn.execute(
                "insert into controls.attribution_overrides (override_set_id, deal_id, partner_id, credit, created_by, reason) "
                "values (%s, %s, %s, %s, %s, %s)",
                (set_id, deal_id, c.partner_id, c.credit, by, reason),
            )
    return set_id
