"""Control commands for partner managers and finance (see docs/rules.md, Holds, review, disputes and approvals): each writes one append-only, audited
row set (who, when, why) and refuses bad input with a message that says what to do. The lists (held payout
lines, disputes, overrides) return plain rows (dicts) for the command line to print."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import psycopg
from psycopg.rows import dict_row


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


def format_utc(value: dt.datetime) -> str:
    """A timestamp as the control answers and lists show it: UTC, to the second."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _lookup(
    conn: psycopg.Connection, relation: str, column: str, value: str, columns: str = "1"
) -> tuple | None:
    try:
        return conn.execute(
            f"select {columns} from {relation} where {column} = %s limit 1", (value,)
        ).fetchone()
    except psycopg.errors.UndefinedTable:
        conn.rollback()
        raise ControlError(
            f"{relation} does not exist yet: run the nightly job first (referral-pipeline run --date ...)"
        ) from None


def _serialise(conn: psycopg.Connection, table: str) -> None:
    """Serialise the control commands that check, then append to, `table` until the transaction ends. An
    advisory lock, not `lock table`: PostgreSQL grants that lock mode only with UPDATE, DELETE or TRUNCATE on
    the table, which the finance role (insert only on controls) does not have. Every writer of the control
    tables goes through this module."""
    conn.execute("select pg_advisory_xact_lock(hashtextextended(%s, 0))", (table,))


def _exists(conn: psycopg.Connection, relation: str, column: str, value: str, what: str) -> bool:
    return _lookup(conn, relation, column, value) is not None


def approve(conn: psycopg.Connection, event_id: str, *, by: str, reason: str) -> int:
    """Release a reward event from every hold. Returns the approval id. Refused, writing nothing, when the event
    is already approved or already paid in full (there is no hold left to release)."""
    by, reason = _actor(by, reason)
    event_id = event_id.strip()
    event = _lookup(conn, "marts.fct_reward_entitlements", "event_id", event_id, "amount")
    if event is None:
        raise ControlError(f"unknown event {event_id!r}: see marts.fct_reward_events for event ids")
    with conn.transaction():
        _serialise(conn, "controls.approvals")
        earlier = conn.execute(
            "select created_by, created_at, reason from controls.approvals where event_id = %s "
            "order by approval_id limit 1",
            (event_id,),
        ).fetchone()
        if earlier:
            raise ControlError(
                f"{event_id} is already approved by {earlier[0]} at {format_utc(earlier[1])}: {earlier[2]}"
            )
        paid, batches = conn.execute(
            "select sum(l.amount), string_agg(l.batch_id, ', ' order by b.period) "
            "from payouts.ledger_lines l join payouts.batches b using (batch_id) where l.event_id = %s "
            "and not exists (select from controls.batch_decisions d where d.batch_id = b.batch_id "
            "and d.decision = 'reject')",  # a rejected batch is void: its lines paid nothing
            (event_id,),
        ).fetchone()
        if batches and paid == event[0]:
            raise ControlError(
                f"{event_id} is already paid in full ({paid:.2f} in {batches}): there is no hold to release"
            )
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
        _serialise(conn, "controls.disputes")
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
        _serialise(conn, "controls.attribution_overrides")  # against a concurrent withdrawal of the deal
        set_id = conn.execute("select nextval('controls.attribution_override_set_seq')").fetchone()[0]
        for c in credits:
            conn.execute(
                "insert into controls.attribution_overrides (override_set_id, deal_id, partner_id, credit, created_by, reason) "
                "values (%s, %s, %s, %s, %s, %s)",
                (set_id, deal_id, c.partner_id, c.credit, by, reason),
            )
    return set_id


def withdraw_override(conn: psycopg.Connection, deal_id: str, *, by: str, reason: str) -> int:
    """Withdraw the attribution override in force for a deal: one new audited row, nothing updated or deleted.
    From the next run the deal has its computed attribution again. Returns the withdrawal id."""
    by, reason = _actor(by, reason)
    deal_id = (deal_id or "").strip()
    if not deal_id:
        raise ControlError("give the DEAL_ID whose attribution override to withdraw")
    with conn.transaction():
        _serialise(conn, "controls.attribution_overrides")
        if not overrides_list(conn, deal_id=deal_id, in_force_only=True):
            raise ControlError(
                f"deal {deal_id} has no attribution override in force, so there is nothing to withdraw "
                f"(see `overrides list --deal {deal_id}`)"
            )
        row = conn.execute(
            "insert into controls.attribution_override_withdrawals (deal_id, created_by, reason) "
            "values (%s, %s, %s) returning withdrawal_id",
            (deal_id, by, reason),
        ).fetchone()
    return row[0]


# --- lists ------------------------------------------------------------------------------------------------


def _rows(conn: psycopg.Connection, query: str, params: dict | tuple = ()) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def review_queue(conn: psycopg.Connection, period: str | None = None) -> tuple[dict | None, list[dict]]:
    """The held lines of one payout batch with their reasons: the batch of `period` (YYYY-MM), by default the
    latest recorded batch, whose queue is what is held now (every batch re-examines every unpaid line).
    Returns (batch: batch_id, period, status, created_at; or None when no batch is recorded yet, rows). Each row:
    event_id, event_type, partner_id, deal_id, referral_id, amount, payable_at, reasons, and approved_by /
    approved_at when an approval recorded since releases the line in the next batch."""
    where, params = "order by period desc, created_at desc limit 1", ()  # a period's latest (live) batch
    if period is not None:
        period = period.strip()
        try:
            dt.date.fromisoformat(f"{period}-01")
        except ValueError:
            raise ControlError(f"--period {period!r}: expected a month YYYY-MM, e.g. 2025-01") from None
        where, params = "where period = %s order by created_at desc limit 1", (period,)
    batches = _rows(conn, f"select batch_id, period, status, created_at from payouts.batches {where}", params)
    if not batches:
        if period is None:
            return None, []
        recorded = conn.execute("select min(period), max(period) from payouts.batches").fetchone()
        known = (
            f"recorded periods are {recorded[0]} to {recorded[1]}" if recorded[0] else "none is recorded yet"
        )
        raise ControlError(f"no payout batch is recorded for period {period}: {known}")
    batch = batches[0]
    rows = _rows(
        conn,
        """
        select r.event_id, r.event_type, r.partner_id, r.deal_id, r.referral_id, r.amount, r.payable_at,
               r.reasons, a.created_by as approved_by, a.created_at as approved_at
        from payouts.review_lines r
        left join lateral (
          select created_by, created_at from controls.approvals
          where event_id = r.event_id order by approval_id limit 1
        ) a on true
        where r.batch_id = %s
        order by r.partner_id, r.event_id
        """,
        (batch["batch_id"],),
    )
    return batch, rows


def disputes_list(conn: psycopg.Connection, *, include_history: bool = False) -> list[dict]:
    """Dispute actions, oldest first: by default the opening action of every open dispute (the latest action on
    its subject is `open`, as the payout step decides), with include_history every open and resolve action.
    Each row: dispute_action_id, subject_type, subject_id, action, created_by, created_at, reason."""
    return _rows(
        conn,
        """
        with actions as (
          select *, row_number() over (
            partition by subject_type, subject_id order by created_at desc, dispute_action_id desc
          ) = 1 as latest
          from controls.disputes
        )
        select dispute_action_id, subject_type, subject_id, action, created_by, created_at, reason
        from actions where %(all)s or (latest and action = 'open')
        order by created_at, dispute_action_id
        """,
        {"all": include_history},
    )


def overrides_list(
    conn: psycopg.Connection, *, deal_id: str | None = None, in_force_only: bool = True
) -> list[dict]:
    """Attribution override actions, per deal oldest first: sets (action `override`, credits `PARTNER=SHARE, ...`) and
    withdrawals (action `withdraw`). Sets and withdrawal ids share one sequence and the latest action per deal
    wins, as in the dbt staging model; status is `in force` for a deal's latest action, else `superseded` or
    `withdrawn` by the action after it. in_force_only keeps the sets in force. Each row: action_id, deal_id,
    action, credits, created_by, created_at, reason, status."""
    return _rows(
        conn,
        """
        with actions as (
          select override_set_id as action_id, deal_id, 'override' as action,
                 string_agg(partner_id || '=' || credit::text, ', ' order by partner_id) as credits,
                 min(created_by) as created_by, min(created_at) as created_at, min(reason) as reason
          from controls.attribution_overrides group by override_set_id, deal_id
          union all
          select withdrawal_id, deal_id, 'withdraw', '', created_by, created_at, reason
          from controls.attribution_override_withdrawals
        ),
        statuses as (
          select *, case lead(action) over (partition by deal_id order by action_id)
                      when 'override' then 'superseded' when 'withdraw' then 'withdrawn' else 'in force'
                    end as status
          from actions
        )
        select action_id, deal_id, action, credits, created_by, created_at, reason, status from statuses
        where (%(deal)s::text is null or deal_id = %(deal)s)
          and (not %(in_force)s or (status = 'in force' and action = 'override'))
        order by deal_id, action_id
        """,
        {"deal": deal_id.strip() if deal_id else None, "in_force": in_force_only},
    )
