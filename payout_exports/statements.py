"""Partner statements (see docs/statements.md): for every partner of a published payout batch (paid, held or
deferred), one CSV file and one self-contained HTML page that explain the batch line by line, published next to
the batch under `period=YYYY-MM/statements/` with a manifest of their own (written last, with checksums).

Every amount comes from the batch as recorded in the ledger (paid lines, held lines, deferred partners, the
partner's payout); the totals therefore equal the partner's rows of `payouts.csv`, `review_queue.csv` and
`deferred.csv` to the cent. The descriptive columns (deal and company, the touchpoints and the credit, the tier
and rate) are read from the warehouse's marts when the statements are first published. Published statements are
never overwritten: once their manifest exists, rerunning writes nothing.

A quarter statement (`2025-Q1`) sums the quarter's published months; it is published under
`quarter=YYYY-Qn/statements/through=YYYY-MM/`, named by the last month it includes, so a quarter-to-date
statement is never overwritten by the complete one.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import urllib.parse
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import psycopg

from .ledger import DEFAULT_INPUTS, ZERO, Inputs, PayoutError
from .periods import format_ts, period_start
from .publish import batch_folder
from .render import MANIFEST, format_decimal, format_money, manifest_bytes, render_csv, sha256
from .store import Store, open_store

Log = Callable[[str], object]

STATEMENT_COLUMNS = (
    "period", "section", "event_id", "event_type", "deal_id", "deal_name", "company", "referral_id",
    "earned_at", "payable_at", "touchpoints", "payout_model", "credit", "rules_version", "tier",
    "commission_rate", "entitlement", "previously_paid", "amount", "reasons", "released_by", "currency",
    "fx_rate", "fx_rate_date", "payout_amount", "note",
)  # fmt: skip

# The sections of a statement, in the order their rows appear within a period.
SECTIONS = (
    "opening_balance", "paid_line", "held_line", "deferred", "paid_total", "payout", "held_total",
    "closing_balance",
)  # fmt: skip

RELEASED_BY = {
    "partner_inactive": "the partner's CRM status becoming active, or an approval of the event",
    "missing_tax_form": "a tax form on file in the partner's CRM record, or an approval of the event",
    "disputed": "resolving the dispute, or an approval of the event",
}

# Where the descriptive columns come from (read only; a missing relation leaves its columns empty).
ATTRIBUTION = "marts.fct_attribution"
REWARD_EVENTS = "marts.fct_reward_events"
REFERRALS = "marts.fct_referrals"
PATHS = "intermediate.int_attribution__paths"
DEALS = "staging.stg_crm__deals"
COMPANIES = "staging.stg_crm__companies"


# --- what a statement holds ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    batch_id: str
    period: str
    cutoff: dt.datetime
    rules_version: str
    program_currency: str
    minimum_payout: Decimal
    status: str


@dataclass
class Statement:
    """One partner's statement over one or more periods: its rows (STATEMENT_COLUMNS) and its totals."""

    partner_id: str
    partner_name: str
    title: str  # "2025-01" or "2025-Q1 (2025-01 to 2025-02)"
    batches: list[Batch]
    rows: list[dict] = field(default_factory=list)
    opening_balance: Decimal = ZERO
    paid_amount: Decimal = ZERO
    held_amount: Decimal = ZERO  # at the last period
    deferred_balance: Decimal = ZERO  # at the last period
    closing_balance: Decimal = ZERO
    payout_by_currency: dict[str, Decimal] = field(default_factory=dict)

    @property
    def program_currency(self) -> str:
        return self.batches[-1].program_currency


@dataclass(frozen=True)
class PublishedStatements:
    what: str  # "period 2025-01" or "quarter 2025-Q1 (through 2025-02)"
    where: str  # the folder URI, with a trailing slash
    batch_ids: tuple[str, ...]
    partner_count: int
    written: int  # files written by this call (0: everything was already published)


def parse_quarter(text: str) -> list[str]:
    """The months of `YYYY-Qn`, in order."""
    m = re.fullmatch(r"(\d{4})-Q([1-4])", text)
    if not m:
        raise PayoutError(f"invalid quarter {text!r}; expected YYYY-Qn, e.g. 2025-Q1")
    year, q = int(m.group(1)), int(m.group(2))
    return [f"{year}-{month:02d}" for month in range(3 * q - 2, 3 * q + 1)]


# --- reading the batch and the marts ------------------------------------------------------------------------


def _batch(conn: psycopg.Connection, period: str) -> Batch | None:
    row = conn.execute(
        "select batch_id, period, cutoff, rules_version, program_currency, minimum_payout, status "
        "from payouts.batches where period = %s order by status = 'published' desc, created_at desc",
        (period,),
    ).fetchone()  # a period may also hold a rejected (void, never published) batch: the published one first
    return Batch(*row) if row else None


def _exists(conn: psycopg.Connection, relation: str) -> bool:
    return conn.execute("select to_regclass(%s) is not null", (relation,)).fetchone()[0]


def _previous_balances(conn: psycopg.Connection, period: str) -> tuple[str | None, dict[str, tuple]]:
    """The batch before `period` and, per partner, (held amount, deferred balance) in it."""
    prev = conn.execute(
        "select batch_id from payouts.batches where period < %s "
        "order by period desc, status = 'published' desc, created_at desc limit 1",
        (period,),
    ).fetchone()
    if prev is None:
        return None, {}
    rows = conn.execute(
        """
        select partner_id, sum(held), sum(deferred) from (
          select partner_id, amount as held, 0 as deferred from payouts.review_lines where batch_id = %(b)s
          union all
          select partner_id, 0, balance from payouts.deferred_partners where batch_id = %(b)s
        ) x group by partner_id
        """,
        {"b": prev[0]},
    ).fetchall()
    return prev[0], {p: (Decimal(h), Decimal(d)) for p, h, d in rows}


def _lines(conn: psycopg.Connection, table: str, batch_id: str) -> list[dict]:
    reasons = ", reasons" if table == "review_lines" else ", null as reasons"
    cur = conn.execute(
        f"select event_id, event_type, partner_id, deal_id, referral_id, earned_at, payable_at, entitlement, "
        f"previously_paid, amount{reasons} from payouts.{table} where batch_id = %s order by event_id",
        (batch_id,),
    )
    names = [c.name for c in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


@dataclass
class _Context:
    """The descriptive data of the lines of one batch, read from the warehouse."""

    events: dict[str, tuple] = field(default_factory=dict)  # event_id -> tier, rules_version, credit, rate
    deals: dict[str, tuple] = field(default_factory=dict)  # deal_id -> deal_name, company
    credits: dict[tuple[str, str], tuple] = field(
        default_factory=dict
    )  # (deal, partner) -> credit, source, model
    touches: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    referrals: dict[str, tuple] = field(default_factory=dict)  # referral_id -> submitted_at, company


def _date(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).date().isoformat() if value else ""


def _company(name: str | None, domain: str | None) -> str:
    if name and domain:
        return f"{name} ({domain})"
    return name or domain or ""


def _context(conn: psycopg.Connection, lines: list[dict]) -> _Context:
    ctx = _Context()
    event_ids = [x["event_id"] for x in lines]
    deal_ids = sorted({x["deal_id"] for x in lines if x["deal_id"]})
    referral_ids = sorted({x["referral_id"] for x in lines if x["referral_id"]})
    if _exists(conn, REWARD_EVENTS):
        for eid, *rest in conn.execute(
            f"select event_id, tier, rules_version, payout_credit, commission_rate from {REWARD_EVENTS} "
            "where event_id = any(%s)",
            (event_ids,),
        ):
            ctx.events[eid] = tuple(rest)
    if _exists(conn, DEALS) and _exists(conn, COMPANIES):
        for deal, name, domain, company in conn.execute(
            f"select d.deal_id, d.deal_name, d.company_domain, c.name from {DEALS} d "
            f"left join {COMPANIES} c on c.company_domain = d.company_domain where d.deal_id = any(%s)",
            (deal_ids,),
        ):
            ctx.deals[deal] = (name or "", _company(company, domain))
    if _exists(conn, ATTRIBUTION):
        for deal, partner, credit, source, model in conn.execute(
            f"select deal_id, partner_id, credit, credit_source, payout_model from {ATTRIBUTION} "
            "where model = 'payout' and deal_id = any(%s)",
            (deal_ids,),
        ):
            ctx.credits[(deal, partner)] = (credit, source, model)
    if _exists(conn, PATHS):
        for deal, partner, touch_type, occurred in conn.execute(
            f"select deal_id, partner_id, touch_type, occurred_at from {PATHS} where deal_id = any(%s) "
            "order by deal_id, path_position",
            (deal_ids,),
        ):
            ctx.touches[(deal, partner)].append(f"{touch_type} {_date(occurred)}")
    if _exists(conn, REFERRALS) and _exists(conn, COMPANIES):
        for ref, submitted, key, company in conn.execute(
            f"select r.referral_id, r.submitted_at, r.account_key, c.name from {REFERRALS} r "
            f"left join {COMPANIES} c on 'domain:' || c.company_domain = r.account_key "
            "where r.referral_id = any(%s)",
            (referral_ids,),
        ):
            domain = key.removeprefix("domain:") if key and key.startswith("domain:") else None
            ctx.referrals[ref] = (submitted, _company(company, domain))
    return ctx


def _partners(conn: psycopg.Connection, inputs: Inputs) -> dict[str, tuple[str, str]]:
    """partner_id -> (name, payout currency) from the partners relation (empty when it does not exist)."""
    if not _exists(conn, inputs.partners):
        return {}
    return {
        pid: (name or "", (currency or "").upper())
        for pid, name, currency in conn.execute(
            f"select partner_id, name, payout_currency from {inputs.partners}"  # noqa: S608 (a relation name)
        )
    }


def _rate_date(
    conn: psycopg.Connection, inputs: Inputs, currency: str, rate: Decimal, cutoff: dt.datetime
) -> str:
    """The rate_date of the rate a payout used: the latest on or before the cutoff's date, if it is that rate."""
    if not _exists(conn, inputs.fx_rates):
        return ""
    row = conn.execute(
        f"select rate_date, rate from {inputs.fx_rates} where upper(currency) = %s and rate_date <= %s "
        "order by rate_date desc limit 1",
        (currency, cutoff.astimezone(dt.UTC).date()),
    ).fetchone()
    return row[0].isoformat() if row and Decimal(row[1]) == Decimal(rate) else ""


# --- building -----------------------------------------------------------------------------------------------


def _row(period: str, section: str, **values) -> dict:
    row = dict.fromkeys(STATEMENT_COLUMNS)
    row.update(period=period, section=section, **values)
    return row


def _line_row(batch: Batch, section: str, line: dict, ctx: _Context) -> dict:
    deal, partner, ref = line["deal_id"], line["partner_id"], line["referral_id"]
    tier = rules_version = credit = rate = None
    if line["event_id"] in ctx.events:
        tier, rules_version, credit, rate = ctx.events[line["event_id"]]
    deal_name, company = ctx.deals.get(deal, ("", "")) if deal else ("", "")
    touches, model, note = "", "", ""
    if deal:
        touches = "; ".join(ctx.touches.get((deal, partner), []))
        if (deal, partner) in ctx.credits:
            credit_now, source, payout_model = ctx.credits[(deal, partner)]
            credit = credit if credit is not None else credit_now
            model = "override" if source == "override" else (payout_model or "")
    elif ref and ref in ctx.referrals:
        submitted, company = ctx.referrals[ref]
        touches = f"referral {_date(submitted)}"
    if line["event_id"] not in ctx.events:
        note = "the event is no longer produced by the current data: its entitlement is 0"
    if line["event_type"] != "commission":
        rate = None
    if line["event_type"] == "referral_bonus":
        credit = None  # a referral bonus is the tier's flat amount, not a share of a deal
    reasons = line["reasons"] or ""
    return _row(
        batch.period,
        section,
        event_id=line["event_id"],
        event_type=line["event_type"],
        deal_id=deal,
        deal_name=deal_name,
        company=company,
        referral_id=ref,
        earned_at=line["earned_at"],
        payable_at=line["payable_at"],
        touchpoints=touches,
        payout_model=model,
        credit=format_decimal(credit) if credit is not None else None,
        rules_version=rules_version,
        tier=tier,
        commission_rate=format_decimal(rate) if rate is not None else None,
        entitlement=line["entitlement"],
        previously_paid=line["previously_paid"],
        amount=line["amount"],
        reasons=reasons,
        released_by="; ".join(RELEASED_BY.get(r, r) for r in reasons.split(";") if r),
        currency=batch.program_currency,
        note=note,
    )


def _month(conn: psycopg.Connection, batch: Batch, inputs: Inputs) -> tuple[list[str], dict[str, Statement]]:
    """The statements of one published batch, one per partner in it; partners sorted."""
    paid = _lines(conn, "ledger_lines", batch.batch_id)
    held = _lines(conn, "review_lines", batch.batch_id)
    deferred = {
        p: (n, Decimal(b))
        for p, n, b in conn.execute(
            "select partner_id, line_count, balance from payouts.deferred_partners where batch_id = %s",
            (batch.batch_id,),
        )
    }
    payouts = {
        r[0]: r[1:]
        for r in conn.execute(
            "select partner_id, partner_name, line_count, amount, payout_currency, fx_rate, payout_amount "
            "from payouts.partner_payouts where batch_id = %s",
            (batch.batch_id,),
        )
    }
    prev_batch, previous = _previous_balances(conn, batch.period)
    partners = _partners(conn, inputs)
    ctx = _context(conn, paid + held)
    paid_by: dict[str, list[dict]] = defaultdict(list)
    held_by: dict[str, list[dict]] = defaultdict(list)
    for x in paid:
        paid_by[x["partner_id"]].append(x)
    for x in held:
        held_by[x["partner_id"]].append(x)
    rate_dates: dict[tuple[str, Decimal], str] = {}
    ids = sorted(paid_by.keys() | held_by.keys() | deferred.keys() | payouts.keys())
    out: dict[str, Statement] = {}
    cur = batch.program_currency
    for pid in ids:
        name = payouts[pid][0] if pid in payouts else partners.get(pid, ("", ""))[0]
        st = Statement(pid, name, batch.period, [batch])
        rows = st.rows
        prev_held, prev_deferred = previous.get(pid, (ZERO, ZERO))
        st.opening_balance = prev_held + prev_deferred
        rows.append(
            _row(
                batch.period,
                "opening_balance",
                amount=st.opening_balance,
                currency=cur,
                note=(
                    f"not paid in {prev_batch}: held {format_money(prev_held)}, deferred "
                    f"{format_money(prev_deferred)}; reconsidered in this batch's lines"
                    if prev_batch
                    else "first payout batch of the program"
                ),
            )
        )
        mine_paid, mine_held = paid_by.get(pid, []), held_by.get(pid, [])
        rows += [_line_row(batch, "paid_line", x, ctx) for x in mine_paid]
        rows += [_line_row(batch, "held_line", x, ctx) for x in mine_held]
        if pid in deferred:
            n, balance = deferred[pid]
            st.deferred_balance = balance
            rows.append(
                _row(
                    batch.period,
                    "deferred",
                    amount=balance,
                    currency=cur,
                    note=f"{n} line(s) totalling {format_money(balance)} {cur}, below the minimum payout of "
                    f"{format_decimal(batch.minimum_payout)} {cur}: not paid, carried to the next period",
                )
            )
        st.paid_amount = sum((x["amount"] for x in mine_paid), ZERO)
        rows.append(
            _row(
                batch.period,
                "paid_total",
                amount=st.paid_amount,
                currency=cur,
                note=f"{len(mine_paid)} paid line(s)",
            )
        )
        if pid in payouts:
            _, count, amount, currency, rate, payout_amount = payouts[pid]
            if currency != cur and (currency, rate) not in rate_dates:
                rate_dates[(currency, rate)] = _rate_date(conn, inputs, currency, rate, batch.cutoff)
            if amount != st.paid_amount or count != len(mine_paid):
                raise PayoutError(
                    f"{batch.batch_id}: partner {pid}: its payout ({amount}, {count} lines) differs from its lines"
                )
            st.payout_by_currency[currency] = payout_amount
            rows.append(
                _row(
                    batch.period,
                    "payout",
                    amount=amount,
                    currency=currency,
                    fx_rate=rate,
                    fx_rate_date=rate_dates[(currency, rate)] if currency != cur else "",
                    payout_amount=payout_amount,
                    note=f"to transfer in {currency}"
                    + ("" if currency != cur else " (the program currency: rate 1)"),
                )
            )
        st.held_amount = sum((x["amount"] for x in mine_held), ZERO)
        rows.append(
            _row(
                batch.period,
                "held_total",
                amount=st.held_amount,
                currency=cur,
                note=f"{len(mine_held)} held line(s): not paid",
            )
        )
        st.closing_balance = st.held_amount + st.deferred_balance
        rows.append(
            _row(
                batch.period,
                "closing_balance",
                amount=st.closing_balance,
                currency=cur,
                note="held plus deferred: not paid, reconsidered in the next batch",
            )
        )
        out[pid] = st
    return ids, out


def _published_batch(conn: psycopg.Connection, store: Store, period: str) -> tuple[Batch, bytes]:
    """The published batch of a period and its manifest's bytes in the store; refuses anything else."""
    batch = _batch(conn, period)
    where = f"{store.uri.rstrip('/')}/{batch_folder(period)}/"
    if batch is None:
        raise PayoutError(
            f"no payout batch is recorded for period {period}: statements need a published batch"
        )
    if batch.status != "published":
        raise PayoutError(
            f"{batch.batch_id} is recorded but not published yet: statements follow the batch's files"
        )
    manifest = store.read(f"{batch_folder(period)}/{MANIFEST}")
    if manifest is None:
        raise PayoutError(
            f"{batch.batch_id} has no {MANIFEST} at {where}: statements are published next to the batch's "
            "files (check REFERRAL_EXPORT_URI)"
        )
    return batch, manifest


def build_statements(
    conn: psycopg.Connection, periods: list[str], title: str, inputs: Inputs = DEFAULT_INPUTS
) -> list[Statement]:
    """The statements of every partner in the given published periods (months), summed over them."""
    merged: dict[str, Statement] = {}
    batches = []
    for period in periods:
        batch = _batch(conn, period)
        if batch is None or batch.status != "published":
            raise PayoutError(f"no published payout batch for period {period}")
        batches.append(batch)
        _, month = _month(conn, batch, inputs)
        for pid, st in month.items():
            if pid not in merged:
                merged[pid] = st
                st.title = title
                st.batches = [batch]
                continue
            total = merged[pid]
            total.rows += st.rows
            total.batches.append(batch)
            total.paid_amount += st.paid_amount
            for c, v in st.payout_by_currency.items():
                total.payout_by_currency[c] = total.payout_by_currency.get(c, ZERO) + v
    for st in merged.values():
        if len(periods) > 1:
            _quarter_totals(st, batches, title)
    return [merged[p] for p in sorted(merged)]


def _quarter_totals(st: Statement, batches: list[Batch], title: str) -> None:
    """A multi-month statement: opening of its first month, closing of the last month of the range (0 when the
    partner is not in it), paid and payouts summed."""
    last = batches[-1].period
    first_rows = [r for r in st.rows if r["section"] == "opening_balance"]
    st.opening_balance = first_rows[0]["amount"]
    in_last = [r for r in st.rows if r["period"] == last]
    st.held_amount = next((r["amount"] for r in in_last if r["section"] == "held_total"), ZERO)
    st.deferred_balance = next((r["amount"] for r in in_last if r["section"] == "deferred"), ZERO)
    st.closing_balance = st.held_amount + st.deferred_balance
    cur = batches[-1].program_currency
    label = title.split(" ")[0]
    st.rows.append(
        _row(label, "opening_balance", amount=st.opening_balance, currency=cur, note="at the first month")
    )
    st.rows.append(
        _row(
            label,
            "paid_total",
            amount=st.paid_amount,
            currency=cur,
            note="sum of the months' paid totals",
        )
    )
    for c in sorted(st.payout_by_currency):
        st.rows.append(
            _row(
                label,
                "payout",
                currency=c,
                payout_amount=st.payout_by_currency[c],
                note=f"sum of the months' payouts in {c}",
            )
        )
    st.rows.append(
        _row(label, "held_total", amount=st.held_amount, currency=cur, note=f"held at the end of {last}")
    )
    st.rows.append(
        _row(
            label,
            "closing_balance",
            amount=st.closing_balance,
            currency=cur,
            note=f"held plus deferred at the end of {last}",
        )
    )


# --- rendering ----------------------------------------------------------------------------------------------


def render_statement_csv(st: Statement) -> bytes:
    return render_csv(STATEMENT_COLUMNS, [tuple(r[c] for c in STATEMENT_COLUMNS) for r in st.rows])


def _money(value: Decimal | None) -> str:
    return "" if value is None else format_money(value)


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:96rem;
color:#1d2430;padding:0 1rem;line-height:1.4}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ccd3dd}
.meta{color:#4a5565;margin-top:0}
table{border-collapse:collapse;width:100%;font-size:.85rem;margin:.5rem 0}
th,td{border-bottom:1px solid #e3e7ee;padding:.3rem .4rem;text-align:left;vertical-align:top;
overflow-wrap:anywhere}
th{background:#f3f5f8}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.summary{width:auto;min-width:28rem}table.summary th{background:none;font-weight:normal}
tr.total td{font-weight:bold}.held{color:#8a4b00}.note{color:#4a5565;font-size:.85rem}
@media print{body{margin:0}}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _ts(value: object) -> str:
    return format_ts(value) if isinstance(value, dt.datetime) else _e(value)


def _short(credit: str | None) -> str | None:
    """A credit for reading (6 places at most); the CSV keeps it exact."""
    if not credit:
        return credit
    value = Decimal(credit)
    shown = value.quantize(Decimal("0.000001")).normalize()
    return format(shown, "f") if shown == value else f"{format(shown, 'f')}…"


def _lines_table(rows: list[dict], held: bool) -> str:
    head = [
        "Event", "Type", "Deal", "Company", "Earned", "Payable", "Touchpoints", "Credit (model)", "Rules",
        "Tier", "Rate", "Entitlement", "Previously paid", "Amount",
    ]  # fmt: skip
    if held:
        head.append("Held because (released by)")
    out = ["<table><thead><tr>"]
    out += [
        f'<th class="{"num" if h in ("Entitlement", "Previously paid", "Amount") else ""}">{h}</th>'
        for h in head
    ]
    out.append("</tr></thead><tbody>")
    for r in rows:
        subject = r["deal_id"] or (f"referral {r['referral_id']}" if r["referral_id"] else "")
        deal = _e(subject) + (f"<br><span class=note>{_e(r['deal_name'])}</span>" if r["deal_name"] else "")
        credit = _e(_short(r["credit"])) + (f" ({_e(r['payout_model'])})" if r["payout_model"] else "")
        cells = [
            _e(r["event_id"]), _e(r["event_type"]), deal, _e(r["company"]), _ts(r["earned_at"]),
            _ts(r["payable_at"]), _e(r["touchpoints"]), credit, _e(r["rules_version"]), _e(r["tier"]),
            _e(r["commission_rate"]),
        ]  # fmt: skip
        money = [_money(r["entitlement"]), _money(r["previously_paid"]), _money(r["amount"])]
        row = "".join(f"<td>{c}</td>" for c in cells) + "".join(f'<td class="num">{m}</td>' for m in money)
        if held:
            row += f'<td><span class="held">{_e(r["reasons"])}</span><br><span class=note>{_e(r["released_by"])}</span></td>'
        note = f'<tr><td colspan="{len(head)}" class="note">{_e(r["note"])}</td></tr>' if r["note"] else ""
        out.append(f'<tr data-event="{_e(r["event_id"])}">{row}</tr>{note}')
    out.append("</tbody></table>")
    return "".join(out)


def _summary(rows: list[dict], scope: str) -> str:
    def get(section: str) -> list[dict]:
        return [r for r in rows if r["section"] == section]

    labels = {
        "opening_balance": "Opening balance (not paid before)",
        "paid_total": "Paid in this statement",
        "held_total": "Held for review (not paid)",
        "deferred": "Deferred below the minimum payout (not paid)",
        "closing_balance": "Closing balance (not paid, carried forward)",
    }
    out = ['<table class="summary"><tbody>']
    for section in ("opening_balance", "paid_total", "payout", "held_total", "deferred", "closing_balance"):
        for r in get(section):
            if section == "payout":
                rate = f" at {_e(format_decimal(r['fx_rate']))}" if r["fx_rate"] is not None else ""
                date = f" of {_e(r['fx_rate_date'])}" if r["fx_rate_date"] else ""
                label = f"Payout in {_e(r['currency'])}{rate}{date}"
                value, key = f"{_money(r['payout_amount'])} {_e(r['currency'])}", f"payout-{r['currency']}"
            else:
                label = labels[section]
                value, key = f"{_money(r['amount'])} {_e(r['currency'])}", section
            cls = ' class="total"' if section in ("paid_total", "payout", "closing_balance") else ""
            out.append(
                f'<tr{cls}><th>{label}</th><td class="num" data-scope="{_e(scope)}" data-total="{_e(key)}">'
                f"{value}</td></tr>"
            )
            if r["note"] and section in ("opening_balance", "deferred"):
                out.append(f'<tr><td colspan="2" class="note">{_e(r["note"])}</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


def render_statement_html(st: Statement) -> bytes:
    """One self-contained page (inline style, no script, no external request)."""
    cur = st.program_currency
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Statement {_e(st.title)} - {_e(st.partner_name)} ({_e(st.partner_id)})</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Partner statement {_e(st.title)}</h1>",
        f'<p class="meta"><strong data-partner="{_e(st.partner_id)}">{_e(st.partner_name)}</strong> '
        f"({_e(st.partner_id)}). Amounts in {_e(cur)} (the program currency) unless a currency is named; "
        "times in UTC.</p>",
    ]
    periods = [b.period for b in st.batches]
    if len(periods) > 1:
        scope = st.title.split(" ")[0]
        parts.append(f"<h2>Summary of {_e(st.title)}</h2>")
        parts.append(_summary([r for r in st.rows if r["period"] == scope], scope))
    for batch in st.batches:
        rows = [r for r in st.rows if r["period"] == batch.period]
        parts.append(f'<h2 id="period-{_e(batch.period)}">Period {_e(batch.period)}</h2>')
        parts.append(
            f'<p class="meta">Payout batch {_e(batch.batch_id)}, cutoff {_e(format_ts(batch.cutoff))}, rules '
            f"version {_e(batch.rules_version)}, minimum payout {_e(format_decimal(batch.minimum_payout))} "
            f"{_e(batch.program_currency)}.</p>"
        )
        parts.append(_summary(rows, batch.period))
        paid = [r for r in rows if r["section"] == "paid_line"]
        held = [r for r in rows if r["section"] == "held_line"]
        parts.append(f"<h3>Paid lines ({len(paid)})</h3>")
        parts.append(_lines_table(paid, held=False) if paid else '<p class="note">No line is paid.</p>')
        if held:
            parts.append(f"<h3>Held lines ({len(held)})</h3>")
            parts.append(_lines_table(held, held=True))
    parts.append(
        '<p class="note">Each line: entitlement is what the event is worth as computed for the batch, previously '
        "paid the sum of its lines in earlier batches, amount = entitlement - previously paid. Amounts come from "
        "the payout ledger; deal, company, touchpoints, credit, tier and rate describe the line as known when "
        "this statement was published. Checksums of this file are in the statements' manifest.json.</p>"
    )
    parts.append("</body></html>\n")
    return "\n".join(parts).encode("utf-8")


def statement_name(partner_id: str) -> str:
    """The file name stem of a partner's statement (its id, percent-encoded where needed)."""
    return urllib.parse.quote(partner_id, safe="-_.")


# --- publishing ---------------------------------------------------------------------------------------------


def statements_folder(
    period: str | None = None, quarter: str | None = None, through: str | None = None
) -> str:
    if quarter:
        return f"quarter={quarter}/statements/through={through}"
    return f"{batch_folder(period)}/statements"


def _control_totals(statements: list[Statement]) -> dict:
    by_currency: dict[str, Decimal] = defaultdict(Decimal)
    for st in statements:
        for c, v in st.payout_by_currency.items():
            by_currency[c] += v
    return {
        "partner_count": len(statements),
        "paid_amount": format_money(sum((s.paid_amount for s in statements), ZERO)),
        "held_amount": format_money(sum((s.held_amount for s in statements), ZERO)),
        "deferred_balance": format_money(sum((s.deferred_balance for s in statements), ZERO)),
        "payout_amount_by_currency": {c: format_money(v) for c, v in sorted(by_currency.items())},
    }


def _check_existing(store: Store, folder: str, manifest: bytes) -> None:
    """An already published set of statements: every file its manifest lists is there with its checksum."""
    where = f"{store.uri.rstrip('/')}/{folder}"
    try:
        listed = json.loads(manifest)["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise PayoutError(f"{where}/{MANIFEST} is not a valid manifest ({exc})") from None
    for entry in listed:
        data = store.read(f"{folder}/{entry['name']}")
        if data is None or sha256(data) != entry.get("sha256"):
            raise PayoutError(f"{where}/{entry['name']} is missing or does not match its manifest checksum")


def publish_statements(
    conn: psycopg.Connection,
    export_uri: str | Store,
    *,
    period: str | None = None,
    quarter: str | None = None,
    inputs: Inputs = DEFAULT_INPUTS,
    log: Log = print,
) -> PublishedStatements:
    """Build and publish the statements of a period (or a quarter's published months): per partner a CSV and an
    HTML file, then manifest.json. Files are created only where missing (never overwritten); when the manifest
    already exists nothing is written."""
    if (period is None) == (quarter is None):
        raise PayoutError("give either a period (YYYY-MM) or a quarter (YYYY-Qn)")
    store = open_store(export_uri)
    conn.execute("set timezone = 'UTC'")
    if period is not None:
        period_start(period)  # validates YYYY-MM
        months = [period]
    else:
        months = [
            p
            for p in parse_quarter(quarter)
            if (b := _batch(conn, p)) is not None and b.status == "published"
        ]
        if not months:
            raise PayoutError(f"no payout batch of quarter {quarter} is published yet")
    batch_manifests = [_published_batch(conn, store, p) for p in months]
    if quarter:
        folder = statements_folder(quarter=quarter, through=months[-1])
        what = f"quarter {quarter} (through {months[-1]})"
        title = f"{quarter} ({months[0]} to {months[-1]})" if len(months) > 1 else f"{quarter} ({months[0]})"
    else:
        folder, what, title = statements_folder(period=period), f"period {period}", period
    where = f"{store.uri.rstrip('/')}/{folder}/"
    batch_ids = tuple(b.batch_id for b, _ in batch_manifests)
    existing = store.read(f"{folder}/{MANIFEST}")
    if existing is not None:
        _check_existing(store, folder, existing)
        count = len({e["partner_id"] for e in json.loads(existing)["files"]})
        log(f"statements: {what} already published at {where}; nothing new written")
        conn.rollback()
        return PublishedStatements(what, where, batch_ids, count, 0)
    statements = build_statements(conn, months, title, inputs)
    conn.rollback()  # read only
    files: dict[str, bytes] = {}
    entries = []
    for st in statements:
        stem = statement_name(st.partner_id)
        for ext, data in (("csv", render_statement_csv(st)), ("html", render_statement_html(st))):
            name = f"{stem}.{ext}"
            files[name] = data
            entries.append(
                {"name": name, "partner_id": st.partner_id, "bytes": len(data), "sha256": sha256(data)}
            )
    manifest = {
        "statements": what,
        "periods": months,
        **({"quarter": quarter} if quarter else {"period": period}),
        "batches": [
            {"batch_id": b.batch_id, "period": b.period, "manifest_sha256": sha256(m)}
            for b, m in batch_manifests
        ],
        "program_currency": batch_manifests[-1][0].program_currency,
        "columns": list(STATEMENT_COLUMNS),
        "files": entries,
        "control_totals": _control_totals(statements),
    }
    written = sum(1 for name, data in files.items() if store.create(f"{folder}/{name}", data))
    written += store.create(f"{folder}/{MANIFEST}", manifest_bytes(manifest))
    log(f"statements: {what}: {len(statements)} partners, {written} files written at {where}")
    return PublishedStatements(what, where, batch_ids, len(statements), written)
