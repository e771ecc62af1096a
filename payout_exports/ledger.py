"""The payout ledger (see docs/rules.md, Payout batches): which periods are due, what is due in each, and
recording a batch in one transaction. A recorded batch is immutable: its rows are never updated or deleted
(triggers refuse it); the only change allowed is its status going from `recorded` (or, under the sign-off gate,
`awaiting_approval` once approved) to `published` once its files are out.

The sign-off gate (rules setting `batch_approval: required`, docs/finance.md, Signing off a batch): a batch is
recorded as `awaiting_approval`; finance approves or rejects it with one row in controls.batch_decisions (one
decision per batch, never changed). An approved batch is published; a rejected one is void: its rows stay, every
computation ignores it, and the next run records the period again under a new batch id (`batch-YYYY-MM-r2`, ...).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

import psycopg
from psycopg import sql

from . import periods

CENT = Decimal("0.01")
ZERO = Decimal(0)
HOLD_REASONS = ("partner_inactive", "missing_tax_form", "disputed")
DEAL_EVENT_TYPES = ("qualified_bonus", "commission")
PAYOUT_LOCK = 727_003  # same key as referral_pipeline.warehouse.PAYOUT_LOCK

LINE_COLUMNS = (
    "event_id", "event_type", "partner_id", "deal_id", "referral_id", "earned_at", "payable_at",
    "entitlement", "previously_paid", "amount",
)  # fmt: skip

LEDGER_DDL = """
create schema if not exists payouts;
create table if not exists payouts.batches (
  batch_id text primary key,
  period text not null,                     -- YYYY-MM; one live batch per period (a rejected one is void)
  cutoff timestamptz not null,              -- last instant of the period
  run_date date not null,                   -- the run that recorded it
  created_at timestamptz not null,          -- when it was recorded
  rules_version text not null,              -- version in force at the cutoff
  rules_sha256 text not null,
  code_version text not null,
  program_currency text not null,
  minimum_payout numeric not null,
  program_amount numeric not null,          -- sum of the paid lines
  line_count integer not null,
  partner_count integer not null,
  review_count integer not null,
  deferred_count integer not null,
  status text not null
    constraint batches_status_check check (status in ('recorded', 'awaiting_approval', 'published')),
  published_at timestamptz,
  recorded_by text not null default session_user  -- the database login of the run that recorded it
);
create table if not exists payouts.ledger_lines (
  batch_id text not null references payouts.batches,
  event_id text not null,
  event_type text not null,
  partner_id text not null,
  deal_id text,
  referral_id text,
  earned_at timestamptz not null,
  payable_at timestamptz not null,
  entitlement numeric not null,
  previously_paid numeric not null,
  amount numeric not null,
  primary key (batch_id, event_id)
);
create index if not exists ledger_lines__event on payouts.ledger_lines (event_id);
create index if not exists batches__period on payouts.batches (period);
create table if not exists payouts.review_lines (
  batch_id text not null references payouts.batches,
  event_id text not null,
  event_type text not null,
  partner_id text not null,
  deal_id text,
  referral_id text,
  earned_at timestamptz not null,
  payable_at timestamptz not null,
  entitlement numeric not null,
  previously_paid numeric not null,
  amount numeric not null,
  reasons text not null,
  primary key (batch_id, event_id)
);
create table if not exists payouts.deferred_partners (
  batch_id text not null references payouts.batches,
  partner_id text not null,
  line_count integer not null,
  balance numeric not null,
  primary key (batch_id, partner_id)
);
create table if not exists payouts.partner_payouts (
  batch_id text not null references payouts.batches,
  partner_id text not null,
  partner_name text not null,
  line_count integer not null,
  amount numeric not null,                  -- program currency
  payout_currency text not null,
  fx_rate numeric not null,                 -- as given in the rates (1 for the program currency)
  payout_amount numeric not null,
  primary key (batch_id, partner_id)
);

-- Sign-off of a batch recorded under `batch_approval: required`: written by finance (`batch approve|reject`),
-- append-only like every control table, at most one decision per batch (a rejected batch is void for good).
create schema if not exists controls;
create table if not exists controls.batch_decisions (
  decision_id bigserial primary key,
  batch_id text not null,
  period text not null,
  decision text not null check (decision in ('approve', 'reject')),
  created_by text not null,
  reason text not null,
  created_at timestamptz not null default clock_timestamp(),
  session_user_name text not null default session_user  -- the database login that wrote the row, beside --by
);
create unique index if not exists batch_decisions__one_per_batch on controls.batch_decisions (batch_id);

-- Ledgers created before the sign-off gate: a period may now hold a void batch beside its live one, a batch may
-- await approval, and a batch records the login that recorded it (older rows: '' = unknown).
do $$
begin
  if exists (
    select 1 from pg_constraint where conrelid = 'payouts.batches'::regclass and conname = 'batches_period_key'
  ) then
    alter table payouts.batches drop constraint batches_period_key;
  end if;
  if not exists (
    select 1 from pg_constraint
    where conrelid = 'payouts.batches'::regclass and conname = 'batches_status_check'
      and pg_get_constraintdef(oid) like '%awaiting_approval%'
  ) then
    alter table payouts.batches drop constraint if exists batches_status_check;
    alter table payouts.batches add constraint batches_status_check
      check (status in ('recorded', 'awaiting_approval', 'published'));
  end if;
  if not exists (
    select 1 from pg_attribute
    where attrelid = 'payouts.batches'::regclass and attname = 'recorded_by' and not attisdropped
  ) then
    alter table payouts.batches add column recorded_by text not null default '';
    alter table payouts.batches alter column recorded_by set default session_user;
  end if;
end $$;

create or replace function payouts.refuse_change() returns trigger language plpgsql as $$
begin
  raise exception 'payouts.% is append-only: a recorded batch is never changed', tg_table_name;
end $$;
create or replace function payouts.batch_status_only() returns trigger language plpgsql as $$
begin
  if tg_op = 'DELETE'
     or old.status not in ('recorded', 'awaiting_approval') or new.status <> 'published'
     or (to_jsonb(new) - 'status' - 'published_at') <> (to_jsonb(old) - 'status' - 'published_at') then
    raise exception 'payouts.batches: batch % is immutable (only recorded -> published is allowed)', old.batch_id;
  end if;
  if old.status = 'awaiting_approval' and not exists (
    select 1 from controls.batch_decisions d where d.batch_id = old.batch_id and d.decision = 'approve'
  ) then
    raise exception 'payouts.batches: batch % awaits approval and cannot be published before it is approved',
      old.batch_id;
  end if;
  return new;
end $$;
create or replace trigger batches__immutable before update or delete on payouts.batches
  for each row execute function payouts.batch_status_only();
create or replace trigger ledger_lines__append_only before update or delete on payouts.ledger_lines
  for each row execute function payouts.refuse_change();
create or replace trigger review_lines__append_only before update or delete on payouts.review_lines
  for each row execute function payouts.refuse_change();
create or replace trigger deferred_partners__append_only before update or delete on payouts.deferred_partners
  for each row execute function payouts.refuse_change();
create or replace trigger partner_payouts__append_only before update or delete on payouts.partner_payouts
  for each row execute function payouts.refuse_change();
"""


# Every batch with its sign-off decision (if any) and its state: `recorded` (no sign-off asked, files pending),
# `awaiting_approval`, `approved` (signed off, files pending), `published`, or `voided` (rejected; never published).
BATCH_STATES = """(
  select b.*, d.decision, d.created_by as decided_by, d.created_at as decided_at, d.reason as decision_reason,
         d.session_user_name as decided_session_user,
         case when d.decision = 'reject' then 'voided'
              when b.status = 'awaiting_approval' and d.decision = 'approve' then 'approved'
              else b.status end as state
  from payouts.batches b left join controls.batch_decisions d using (batch_id)
)"""
# The batches that count: all but the rejected (void) ones.
LIVE_BATCHES = """(
  select * from payouts.batches b
  where not exists (
    select 1 from controls.batch_decisions d where d.batch_id = b.batch_id and d.decision = 'reject'
  )
)"""


class PayoutError(RuntimeError):
    """A data or consistency problem that stops publishing; the message says what and where."""


@dataclass(frozen=True)
class Inputs:
    """The warehouse relations a payout run reads (schema.table or schema.view)."""

    events: str = "marts.fct_reward_entitlements"  # a dbt table with a contract (its columns and types)
    partners: str = "staging.stg_crm__partners"
    fx_rates: str = "staging.stg_finance__fx_rates"


DEFAULT_INPUTS = Inputs()


@dataclass(frozen=True)
class Line:
    event_id: str
    event_type: str
    partner_id: str
    deal_id: str | None
    referral_id: str | None
    earned_at: dt.datetime
    payable_at: dt.datetime
    entitlement: Decimal
    previously_paid: Decimal
    amount: Decimal


@dataclass(frozen=True)
class Partner:
    partner_id: str
    name: str
    status: str
    tax_form_on_file: bool
    payout_currency: str


@dataclass(frozen=True)
class PartnerPayout:
    partner_id: str
    partner_name: str
    line_count: int
    amount: Decimal
    payout_currency: str
    fx_rate: Decimal
    payout_amount: Decimal


@dataclass
class BatchPlan:
    """What one batch records: paid lines, held lines with reasons, deferred partners, payouts per partner."""

    paid: list[Line] = field(default_factory=list)
    held: list[tuple[Line, str]] = field(default_factory=list)
    deferred: list[tuple[str, int, Decimal]] = field(default_factory=list)  # partner_id, line_count, balance
    payouts: list[PartnerPayout] = field(default_factory=list)


@dataclass(frozen=True)
class BatchResult:
    batch_id: str
    period: str
    cutoff: dt.datetime
    status: str
    partner_count: int
    line_count: int
    review_count: int
    deferred_count: int
    program_amount: Decimal


def round_money(value: Decimal) -> Decimal:
    """Two places, half away from zero."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def ensure_ledger_schema(conn: psycopg.Connection) -> None:
    """Create the ledger tables (idempotent; serialised with other payout work)."""
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (PAYOUT_LOCK,))
        # A least-privilege login (the payouts role) may not create schemas, and PostgreSQL refuses even
        # `create schema if not exists` to it: once the ledger exists, such a login leaves it as it is.
        ready = conn.execute(
            "select not has_database_privilege(current_database(), 'CREATE') "
            "and to_regclass('payouts.partner_payouts') is not null "
            "and to_regclass('controls.batch_decisions') is not null"
        ).fetchone()[0]
        if not ready:
            conn.execute(LEDGER_DDL)


def _relation(name: str) -> sql.Composable:
    parts = name.split(".")
    if len(parts) not in (1, 2) or not all(parts):
        raise PayoutError(f"invalid relation name {name!r}; expected schema.table")
    return sql.Identifier(*parts)


# --- reading the inputs -------------------------------------------------------------------------------------


def read_events(conn: psycopg.Connection, inputs: Inputs) -> dict[str, Line]:
    """The reward events as computed by this run, as lines with entitlement = amount (previously_paid 0)."""
    query = sql.SQL(
        "select event_id, event_type, partner_id, deal_id, referral_id, amount, earned_at, payable_at from {}"
    ).format(_relation(inputs.events))
    try:
        rows = conn.execute(query).fetchall()
    except psycopg.errors.UndefinedTable:
        raise PayoutError(
            f"the reward events relation {inputs.events} does not exist; build the dbt models first"
        ) from None
    events: dict[str, Line] = {}
    for event_id, etype, partner, deal, referral, amount, earned, payable in rows:
        where = f"{inputs.events}: event {event_id!r}"
        if (
            event_id is None
            or etype is None
            or partner is None
            or earned is None
            or payable is None
            or amount is None
        ):
            raise PayoutError(
                f"{where}: event_id, event_type, partner_id, amount, earned_at and payable_at are required"
            )
        amount = Decimal(amount)
        if round_money(amount) != amount:
            raise PayoutError(f"{where}: amount {amount} has more than two decimal places")
        if event_id in events:
            raise PayoutError(f"{where}: duplicate event_id")
        events[event_id] = Line(
            event_id, etype, partner, deal, referral, earned, payable, amount, ZERO, amount
        )
    return events


def read_previous(conn: psycopg.Connection, before_period: str) -> dict[str, Line]:
    """Per event: the sum of its lines in every earlier batch (as amount) and the attributes of its latest line."""
    rows = conn.execute(
        """
        with lines as (
          select l.*, b.period from payouts.ledger_lines l join {LIVE_BATCHES} b using (batch_id)
          where b.period < %(p)s
        )
        select distinct on (event_id) event_id, event_type, partner_id, deal_id, referral_id, earned_at,
               payable_at, sum(amount) over (partition by event_id) as paid
        from lines order by event_id, period desc
        """.replace("{LIVE_BATCHES}", LIVE_BATCHES),
        {"p": before_period},
    ).fetchall()
    return {r[0]: Line(*r[:7], ZERO, ZERO, r[7]) for r in rows}


def read_partners(conn: psycopg.Connection, inputs: Inputs) -> dict[str, Partner]:
    query = sql.SQL("select partner_id, name, status, tax_form_on_file, payout_currency from {}").format(
        _relation(inputs.partners)
    )
    try:
        rows = conn.execute(query).fetchall()
    except psycopg.errors.UndefinedTable:
        raise PayoutError(
            f"the partners relation {inputs.partners} does not exist; build the dbt models first"
        ) from None
    partners: dict[str, Partner] = {}
    for pid, name, status, tax_form, currency in rows:
        if pid in partners:
            raise PayoutError(
                f"{inputs.partners}: partner {pid!r} appears twice; expected its latest record only"
            )
        partners[pid] = Partner(pid, name, (status or "").lower(), bool(tax_form), (currency or "").upper())
    return partners


def read_rates(conn: psycopg.Connection, inputs: Inputs, on: dt.date) -> dict[str, Decimal]:
    """Per currency, the rate with the latest rate_date on or before the given date."""
    query = sql.SQL(
        "select distinct on (upper(currency)) upper(currency), rate from {} where rate_date <= %s "
        "order by upper(currency), rate_date desc"
    ).format(_relation(inputs.fx_rates))
    try:
        return {c: Decimal(r) for c, r in conn.execute(query, (on,)).fetchall()}
    except psycopg.errors.UndefinedTable:
        raise PayoutError(
            f"the fx rates relation {inputs.fx_rates} does not exist; build the dbt models first"
        ) from None


def read_approvals(conn: psycopg.Connection) -> set[str]:
    return {r[0] for r in conn.execute("select distinct event_id from controls.approvals")}


def read_open_disputes(conn: psycopg.Connection) -> set[tuple[str, str]]:
    """(subject_type, subject_id) whose latest action is `open`."""
    rows = conn.execute(
        """
        select subject_type, subject_id from (
          select distinct on (subject_type, subject_id) subject_type, subject_id, action
          from controls.disputes order by subject_type, subject_id, created_at desc, dispute_action_id desc
        ) latest where action = 'open'
        """
    ).fetchall()
    return {(t, s) for t, s in rows}


@dataclass(frozen=True)
class RulesAtCutoff:
    program_currency: str
    rules_sha256: str
    rules_version: str
    minimum_payout: Decimal
    batch_approval: str = "none"  # program setting: 'required' records batches as awaiting_approval


def read_rules(conn: psycopg.Connection, at: dt.date) -> RulesAtCutoff:
    program = conn.execute(
        "select program_currency, rules_sha256, batch_approval from rules.program"
    ).fetchall()
    if len(program) != 1:
        raise PayoutError(
            "the program rules are not loaded in the warehouse (rules.program); load the rules first"
        )
    version = conn.execute(
        # The window [effective_from, effective_to) each version is in force, as written with the rules (the
        # same join as the dbt macro version_in_force_on).
        "select rules_version, minimum_payout from rules.versions "
        "where effective_from <= %(day)s and (effective_to is null or %(day)s < effective_to)",
        {"day": at},
    ).fetchone()
    if version is None:
        raise PayoutError(f"no rules version is in force on {at} (rules.versions)")
    return RulesAtCutoff(
        program[0][0].upper(), program[0][1], version[0], Decimal(version[1]), program[0][2] or "none"
    )


# --- the computation ----------------------------------------------------------------------------------------


def hold_reasons(line: Line, partners: dict[str, Partner], open_disputes: set[tuple[str, str]]) -> list[str]:
    partner = partners.get(line.partner_id)
    reasons = []
    if partner is None or partner.status != "active":
        reasons.append("partner_inactive")
    if partner is None or not partner.tax_form_on_file:
        reasons.append("missing_tax_form")
    subject = (
        ("deal", line.deal_id) if line.event_type in DEAL_EVENT_TYPES else ("referral", line.referral_id)
    )
    if subject[1] is not None and subject in open_disputes:
        reasons.append("disputed")
    return reasons


def due_lines(events: dict[str, Line], previous: dict[str, Line], end: dt.datetime) -> list[Line]:
    """A(e) - P(e) for every event payable before `end` or with P(e) != 0; lines with due 0 are dropped.
    An event no longer produced has entitlement 0 and keeps the attributes of its latest ledger line."""
    lines = []
    for event_id in sorted(events.keys() | previous.keys()):
        event, prev = events.get(event_id), previous.get(event_id)
        paid = prev.amount if prev else ZERO
        if event is None:
            base, entitlement = prev, ZERO
        elif event.payable_at < end or paid != 0:
            base, entitlement = event, event.entitlement
        else:
            continue
        due = entitlement - paid
        if due != 0:
            lines.append(
                Line(
                    base.event_id,
                    base.event_type,
                    base.partner_id,
                    base.deal_id,
                    base.referral_id,
                    base.earned_at,
                    base.payable_at,
                    entitlement,
                    paid,
                    due,
                )  # fmt: skip
            )
    return lines


def plan_batch(
    lines: Iterable[Line],
    partners: dict[str, Partner],
    approvals: set[str],
    open_disputes: set[tuple[str, str]],
    minimum_payout: Decimal,
    program_currency: str,
    rates: dict[str, Decimal],
    rate_date: dt.date,
) -> BatchPlan:
    """Holds, minimum payout per partner, and the payout in each partner's currency."""
    plan = BatchPlan()
    remaining: dict[str, list[Line]] = defaultdict(list)
    for line in lines:
        reasons = (
            []
            if line.amount < 0 or line.event_id in approvals
            else hold_reasons(line, partners, open_disputes)
        )
        if reasons:
            plan.held.append((line, ";".join(reasons)))
        else:
            remaining[line.partner_id].append(line)
    for partner_id in sorted(remaining):
        plines = remaining[partner_id]
        total = sum((x.amount for x in plines), ZERO)
        if total < minimum_payout:
            plan.deferred.append((partner_id, len(plines), total))
            continue
        partner = partners.get(partner_id)
        if partner is None:
            raise PayoutError(
                f"partner {partner_id!r} has lines to pay but no record in the partners relation"
            )
        currency = partner.payout_currency
        if currency == program_currency:
            rate = Decimal(1)
        elif currency in rates:
            rate = rates[currency]
        else:
            raise PayoutError(
                f"no fx rate for {currency} on or before {rate_date} (partner {partner_id}); cannot publish the batch"
            )
        plan.paid.extend(plines)
        plan.payouts.append(
            PartnerPayout(
                partner_id, partner.name, len(plines), total, currency, rate, round_money(total * rate)
            )
        )
    plan.paid.sort(key=lambda x: x.event_id)
    plan.held.sort(key=lambda x: x[0].event_id)
    return plan


# --- sign-off -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchState:
    """One recorded batch as finance sees it (BATCH_STATES): its ledger row and its sign-off decision."""

    batch_id: str
    period: str
    cutoff: dt.datetime
    run_date: dt.date
    created_at: dt.datetime
    recorded_by: str
    rules_version: str
    code_version: str
    program_currency: str
    minimum_payout: Decimal
    program_amount: Decimal
    line_count: int
    partner_count: int
    review_count: int
    deferred_count: int
    status: str  # as stored: recorded, awaiting_approval or published
    published_at: dt.datetime | None
    decision: str | None  # approve, reject or None
    decided_by: str | None
    decided_at: dt.datetime | None
    decision_reason: str | None
    decided_session_user: str | None
    state: str  # recorded, awaiting_approval, approved, published or voided


_STATE_COLUMNS = ", ".join(BatchState.__dataclass_fields__)


def batch_states(conn: psycopg.Connection, period: str) -> list[BatchState]:
    """Every batch recorded for a period, oldest first (voided ones, then the live one)."""
    rows = conn.execute(
        f"select {_STATE_COLUMNS} from {BATCH_STATES} b where period = %s order by created_at, batch_id",
        (period,),
    ).fetchall()
    return [BatchState(*r) for r in rows]


def batch_state(conn: psycopg.Connection, batch_id: str) -> BatchState | None:
    row = conn.execute(
        f"select {_STATE_COLUMNS} from {BATCH_STATES} b where batch_id = %s", (batch_id,)
    ).fetchone()
    return BatchState(*row) if row else None


def current_batch(conn: psycopg.Connection, period: str) -> BatchState | None:
    """The period's live batch, else its latest (voided) one, else None."""
    states = batch_states(conn, period)
    live = [b for b in states if b.state != "voided"]
    return (live or states or [None])[-1]


def awaiting_approval(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """(batch_id, period) of every batch waiting for its sign-off, oldest first."""
    return conn.execute(
        f"select batch_id, period from {BATCH_STATES} b where state = 'awaiting_approval' order by period"
    ).fetchall()


def _when(value: dt.datetime | None) -> str:
    return periods.format_ts(value) if value else "-"


def decided_text(b: BatchState) -> str:
    """`approved by alice (database user finance_login) at 2025-02-02T09:00:00Z: reason`."""
    verb = "approved" if b.decision == "approve" else "rejected"
    return (
        f"{verb} by {b.decided_by} (database user {b.decided_session_user or 'unknown'}) at "
        f"{_when(b.decided_at)}: {b.decision_reason}"
    )


def decide_batch(
    conn: psycopg.Connection, period: str, decision: str, *, by: str, reason: str
) -> tuple[BatchState, bool]:
    """Approve or reject the batch of a period that awaits approval: one new row in controls.batch_decisions, in
    one transaction serialised with recording. Returns the batch after the decision and whether a row was written:
    approving an approved batch whose files are not all out yet writes nothing (the caller finishes publishing).
    Every other case that is not a first decision on a batch awaiting approval raises PayoutError (one line)."""
    if decision not in ("approve", "reject"):
        raise ValueError(f"decision must be approve or reject, got {decision!r}")
    by, reason = (by or "").strip(), (reason or "").strip()
    if not by:
        raise PayoutError("--by is required: name the person who signs this batch off")
    if not reason:
        raise PayoutError("--reason is required: say why, it is kept in the audit trail")
    verb = "approve" if decision == "approve" else "reject"
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (PAYOUT_LOCK,))
        b = current_batch(conn, period)
        if b is None:
            raise PayoutError(
                f"no payout batch is recorded for period {period}: the nightly run records it after the month "
                "ends (see referral-pipeline status)"
            )
        nothing = f"cannot {verb} {b.batch_id} (period {period}):"
        if b.state == "voided":
            raise PayoutError(
                f"{nothing} it was {decided_text(b)}; it is void and the next nightly run records the period again"
            )
        if b.state == "published":
            how = f"it was {decided_text(b)}" if b.decision else "it was recorded without sign-off"
            if decision == "approve":
                raise PayoutError(f"{nothing} it is already published; {how}")
            raise PayoutError(
                f"{nothing} a published batch is never voided (correct it in a later batch: disputes, approvals, "
                f"overrides); {how}"
            )
        if b.state == "recorded":
            raise PayoutError(
                f"{nothing} it was recorded without sign-off (batch_approval: none) and the payout step publishes "
                "it; nothing to sign off"
            )
        if b.state == "approved":
            if decision == "approve":
                return b, False
            raise PayoutError(
                f"{nothing} it was already {decided_text(b)}; its files are being published (rerun "
                f"`referral-pipeline batch approve {period} --by NAME --reason TEXT` to finish)"
            )
        conn.execute(
            "insert into controls.batch_decisions (batch_id, period, decision, created_by, reason) "
            "values (%s, %s, %s, %s, %s)",
            (b.batch_id, period, decision, by, reason),
        )
        after = batch_state(conn, b.batch_id)
    assert after is not None
    return after, True


# --- recording ----------------------------------------------------------------------------------------------


def last_recorded_period(conn: psycopg.Connection) -> str | None:
    """The latest period with a live (not rejected) batch."""
    return conn.execute(f"select max(period) from {LIVE_BATCHES} b").fetchone()[0]


def earliest_payable(conn: psycopg.Connection, inputs: Inputs) -> dt.datetime | None:
    query = sql.SQL("select min(payable_at) from {}").format(_relation(inputs.events))
    try:
        return conn.execute(query).fetchone()[0]
    except psycopg.errors.UndefinedTable:
        raise PayoutError(
            f"the reward events relation {inputs.events} does not exist; build the dbt models first"
        ) from None


def _line_values(batch: str, line: Line) -> tuple:
    return (batch, *(getattr(line, c) for c in LINE_COLUMNS))


def record_batch(
    conn: psycopg.Connection, period: str, run_date: dt.date, code_version: str, inputs: Inputs
) -> BatchResult | None:
    """Compute and record the batch of one period in one transaction. Returns None when it already exists (a live
    batch: a rejected one does not count, and the period's next batch gets the id batch-YYYY-MM-rN)."""
    cut, end = periods.cutoff(period), periods.period_end(period)
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (PAYOUT_LOCK,))
        if conn.execute(f"select 1 from {LIVE_BATCHES} b where period = %s", (period,)).fetchone():
            return None
        later = conn.execute(
            f"select max(period) from {LIVE_BATCHES} b where period > %s", (period,)
        ).fetchone()[0]
        if later:
            raise PayoutError(f"cannot record period {period}: the later period {later} is already recorded")
        waiting = conn.execute(
            f"select batch_id, period from {BATCH_STATES} b where state = 'awaiting_approval' and period < %s "
            "order by period limit 1",
            (period,),
        ).fetchone()
        if waiting:
            raise PayoutError(
                f"cannot record period {period}: {waiting[0]} (period {waiting[1]}) awaits approval; approve or "
                f"reject it first (referral-pipeline batch show {waiting[1]})"
            )
        earlier = conn.execute(
            "select count(*) from payouts.batches where period = %s", (period,)
        ).fetchone()[0]
        bid = periods.batch_id(period) + (f"-r{earlier + 1}" if earlier else "")
        rules = read_rules(conn, cut.date())
        status = "awaiting_approval" if rules.batch_approval == "required" else "recorded"
        lines = due_lines(read_events(conn, inputs), read_previous(conn, period), end)
        plan = plan_batch(
            lines,
            read_partners(conn, inputs),
            read_approvals(conn),
            read_open_disputes(conn),
            rules.minimum_payout,
            rules.program_currency,
            read_rates(conn, inputs, cut.date()),
            cut.date(),
        )
        program_amount = sum((p.amount for p in plan.payouts), ZERO)
        conn.execute(
            "insert into payouts.batches (batch_id, period, cutoff, run_date, created_at, rules_version, "
            "rules_sha256, code_version, program_currency, minimum_payout, program_amount, line_count, "
            "partner_count, review_count, deferred_count, status) "
            "values (%s, %s, %s, %s, now(), %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                bid,
                period,
                cut,
                run_date,
                rules.rules_version,
                rules.rules_sha256,
                code_version,
                rules.program_currency,
                rules.minimum_payout,
                program_amount,
                len(plan.paid),
                len(plan.payouts),
                len(plan.held),
                len(plan.deferred),
                status,
            ),  # fmt: skip
        )
        cols = ", ".join(LINE_COLUMNS)
        marks = ", ".join(["%s"] * (len(LINE_COLUMNS) + 1))
        with conn.cursor() as cur:
            cur.executemany(
                f"insert into payouts.ledger_lines (batch_id, {cols}) values ({marks})",
                [_line_values(bid, x) for x in plan.paid],
            )
            cur.executemany(
                f"insert into payouts.review_lines (batch_id, {cols}, reasons) values ({marks}, %s)",
                [(*_line_values(bid, x), reasons) for x, reasons in plan.held],
            )
            cur.executemany(
                "insert into payouts.deferred_partners values (%s, %s, %s, %s)",
                [(bid, *d) for d in plan.deferred],
            )
            cur.executemany(
                "insert into payouts.partner_payouts values (%s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        bid,
                        p.partner_id,
                        p.partner_name,
                        p.line_count,
                        p.amount,
                        p.payout_currency,
                        p.fx_rate,
                        p.payout_amount,
                    )  # fmt: skip
                    for p in plan.payouts
                ],
            )
    return BatchResult(
        bid, period, cut, status, len(plan.payouts), len(plan.paid), len(plan.held), len(plan.deferred),
        program_amount,
    )  # fmt: skip


def record_due_batches(
    url: str,
    run_date: dt.date,
    *,
    code_version: str,
    log: Callable[[str], object] = print,
    inputs: Inputs = DEFAULT_INPUTS,
) -> list[BatchResult]:
    """Record, oldest first and one transaction each, every period due for a run on run_date.

    Which periods are due: see docs/rules.md, When a period is published.
    """
    results = []
    with psycopg.connect(url) as conn:
        conn.execute("set timezone = 'UTC'")
        conn.commit()
        ensure_ledger_schema(conn)
        due = periods.due_periods(run_date, earliest_payable(conn, inputs), last_recorded_period(conn))
        waiting = awaiting_approval(conn)
        conn.commit()
        if waiting:
            bid, period = waiting[0]
            later = f"; {', '.join(due)} wait{'s' if len(due) == 1 else ''} for it" if due else ""
            log(
                f"payouts: {bid} (period {period}) awaits approval (referral-pipeline batch show {period}){later}: "
                "a later period is recorded only once the earlier batch is approved or rejected"
            )
            return results
        if not due:
            log(f"payouts: no payout period is due for the run of {run_date}")
        for index, period in enumerate(due):
            log(f"payouts: recording period {period} (cutoff {periods.format_ts(periods.cutoff(period))})")
            result = record_batch(conn, period, run_date, code_version, inputs)
            if result is None:
                log(f"payouts: period {period} was already recorded")
                continue
            log(
                f"payouts: recorded {result.batch_id}: {result.partner_count} partners, {result.line_count} lines, "
                f"{result.program_amount} paid, {result.review_count} held, {result.deferred_count} deferred"
            )
            results.append(result)
            if result.status == "awaiting_approval":
                rest = due[index + 1 :]
                log(
                    f"payouts: {result.batch_id} awaits approval (batch_approval: required): it is published once "
                    f"approved (referral-pipeline batch approve {period} --by NAME --reason TEXT)"
                    + (f"; {', '.join(rest)} will be recorded after that" if rest else "")
                )
                break
    return results


def reconcile_ledger(url: str) -> list[str]:
    """Consistency of every recorded batch: each paid line settles its event (previously_paid = the event's earlier
    lines, previously_paid + amount = entitlement), and the batch's payouts, lines and totals agree."""
    problems: list[str] = []
    with psycopg.connect(url) as conn:
        ensure_ledger_schema(conn)
        for event_id, bid, prev, expected in conn.execute(
            """
            select event_id, batch_id, previously_paid, coalesce(sum(amount) over w, 0)
            from payouts.ledger_lines join {LIVE_BATCHES} b using (batch_id)
            window w as (partition by event_id order by period rows between unbounded preceding and 1 preceding)
            """.replace("{LIVE_BATCHES}", LIVE_BATCHES)
        ):
            if prev != expected:
                problems.append(
                    f"{bid}: {event_id}: previously_paid {prev} but earlier lines sum to {expected}"
                )
        for bid, event_id in conn.execute(
            "select batch_id, event_id from payouts.ledger_lines where previously_paid + amount <> entitlement"
        ):
            problems.append(f"{bid}: {event_id}: previously_paid + amount differs from its entitlement")
        for bid, stored, lc, pc, lines_sum, lines_n, payouts_sum, payouts_n in conn.execute(
            """
            select b.batch_id, b.program_amount, b.line_count, b.partner_count,
                   (select coalesce(sum(amount), 0) from payouts.ledger_lines l where l.batch_id = b.batch_id),
                   (select count(*) from payouts.ledger_lines l where l.batch_id = b.batch_id),
                   (select coalesce(sum(amount), 0) from payouts.partner_payouts p where p.batch_id = b.batch_id),
                   (select count(*) from payouts.partner_payouts p where p.batch_id = b.batch_id)
            from payouts.batches b order by b.batch_id
            """
        ):
            if not stored == lines_sum == payouts_sum:
                problems.append(
                    f"{bid}: program_amount {stored}, lines sum {lines_sum}, payouts sum {payouts_sum} differ"
                )
            if lc != lines_n or pc != payouts_n:
                problems.append(f"{bid}: counts differ: lines {lc}/{lines_n}, partners {pc}/{payouts_n}")
        for bid, partner in conn.execute(
            """
            with lines as (
              select batch_id, partner_id, sum(amount) as amount, count(*)::int as n
              from payouts.ledger_lines group by 1, 2
            )
            select coalesce(l.batch_id, p.batch_id), coalesce(l.partner_id, p.partner_id)
            from lines l full join payouts.partner_payouts p using (batch_id, partner_id)
            where l.n is null or p.amount is null or p.amount <> l.amount or p.line_count <> l.n
            order by 1, 2
            """
        ):
            problems.append(f"{bid}: {partner}: the partner's payout differs from the sum of its lines")
    return problems
