"""The program report: one self-contained HTML file (charts inline as SVG, numbers as tables) and the same
charts as PNG files, built from the warehouse's marts (see docs/report.md).

Every number comes from the warehouse as it is stored: the report only selects, filters by month and sums
rows (per month, per partner, per day); it never derives an amount or a rate the marts hold. Amounts are read
as Decimal; the charts draw them as floats (drawing only), and the tables show them to the cent.

The output is deterministic: the same warehouse and the same options write the same bytes (fixed matplotlib
settings, no creation dates in the files, rows in a fixed order, the "as of" date taken from the data).
"""

from __future__ import annotations

import datetime as dt
import html
import io
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import psycopg
from matplotlib.ticker import MaxNLocator, PercentFormatter, StrMethodFormatter

REPORT_NAME = "program-report"
CHARTS = ("performance", "attribution", "payouts", "data-quality")
RULE_BASED_MODELS = ("first_touch", "last_touch", "linear", "time_decay", "position_based", "payout")
DATA_DRIVEN_MODELS = ("markov", "shapley")
DATA_DRIVEN_TABLE = "marts.fct_attribution_data_driven"
DATA_DRIVEN_WEIGHTS = "marts.dim_partner_weights_data_driven"
REQUIRED = (
    "marts.dim_partners",
    "marts.fct_partner_performance_monthly",
    "marts.fct_attribution",
    "marts.fct_payout_ledger",
    "marts.fct_data_quality",
    "marts.fct_touchpoints",
)
CENT = Decimal("0.01")

# Fixed settings: the same data always draws the same bytes.
RC_PARAMS = {
    "svg.hashsalt": REPORT_NAME,
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "path.simplify": False,
}


class ReportError(Exception):
    """The report cannot be built; the message says what is missing and what to do."""


# --- reading the warehouse ---------------------------------------------------------------------------------


@dataclass
class ReportData:
    as_of: dt.date | None
    period: str | None
    program_currency: str
    partners: dict[str, str]  # partner_id -> name
    performance: list[dict]
    attribution: list[dict]  # partner_id, model, deals, attributed_revenue
    data_driven: list[dict] | None  # None: the data-driven table does not exist
    data_driven_fits: list[dict] = field(default_factory=list)
    data_driven_weights: list[dict] = field(default_factory=list)
    payout_batches: list[dict] = field(default_factory=list)
    payout_currencies: list[dict] = field(default_factory=list)
    quality_days: list[dict] = field(default_factory=list)
    quality_totals: list[dict] = field(default_factory=list)


def period_end(period: str | None) -> dt.date | None:
    """The first day after the month YYYY-MM (the report keeps what happened before it)."""
    if period is None:
        return None
    year, month = map(int, period.split("-"))
    return dt.date(year + month // 12, month % 12 + 1, 1)


def _rows(conn: psycopg.Connection, query: str, params: Sequence | dict = ()) -> list[dict]:
    cur = conn.execute(query, params)
    names = [c.name for c in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _exists(conn: psycopg.Connection, relation: str) -> bool:
    return conn.execute("select to_regclass(%s) is not null", (relation,)).fetchone()[0]


def read_report_data(conn: psycopg.Connection, period: str | None = None) -> ReportData:
    missing = [r for r in REQUIRED if not _exists(conn, r)]
    if missing:
        raise ReportError(
            f"the warehouse has no {missing[0]}: run the nightly job first (referral-pipeline run --date D)"
        )
    end = period_end(period)
    as_of = conn.execute("select max(tier_as_of) from marts.dim_partners").fetchone()[0]
    currency = None
    if _exists(conn, "rules.program"):
        row = conn.execute("select program_currency from rules.program limit 1").fetchone()
        currency = row[0] if row else None
    partners = dict(conn.execute("select partner_id, name from marts.dim_partners order by partner_id"))

    performance = _rows(
        conn,
        """
        select partner_id, month, referrals_submitted, referrals_accepted, quality_leads,
               qualified_opportunities, deals_won, conversion_rate, average_days_to_close, attributed_revenue
        from marts.fct_partner_performance_monthly
        where %(end)s::date is null or month < %(end)s::date
        order by month, partner_id
        """,
        {"end": end},
    )

    # Won deals only (the rest have no revenue); with a period, deals closed before its end.
    won_filter = """
        a.is_won and (%(end)s::date is null or exists (
            select 1 from intermediate.int_deals__enriched d
            where d.deal_id = a.deal_id and d.closed_at < %(end)s::date::timestamp at time zone 'UTC'))
    """
    attribution = _rows(
        conn,
        f"""
        select a.partner_id, a.model, count(*) filter (where a.credit > 0) as deals,
               sum(a.attributed_revenue) as attributed_revenue
        from marts.fct_attribution a
        where {won_filter}
        group by a.partner_id, a.model
        order by a.partner_id, a.model
        """,
        {"end": end},
    )

    data_driven = None
    fits: list[dict] = []
    weights: list[dict] = []
    if _exists(conn, DATA_DRIVEN_TABLE):
        data_driven = _rows(
            conn,
            f"""
            select a.partner_id, a.model, count(*) filter (where a.credit > 0) as deals,
                   sum(a.attributed_revenue) as attributed_revenue
            from {DATA_DRIVEN_TABLE} a
            where {won_filter}
            group by a.partner_id, a.model
            order by a.partner_id, a.model
            """,
            {"end": end},
        )
        fits = _rows(
            conn,
            f"""
            select model, fit_date, window_start, window_end, count(distinct deal_id) as deals
            from {DATA_DRIVEN_TABLE}
            group by model, fit_date, window_start, window_end
            order by model, fit_date, window_start, window_end
            """,
        )
        if _exists(conn, DATA_DRIVEN_WEIGHTS):
            weights = _rows(
                conn,
                f"select model, partner_id, weight from {DATA_DRIVEN_WEIGHTS} order by model, partner_id",
            )

    batches = _rows(
        conn,
        """
        select b.period, b.program_currency,
               (select coalesce(sum(l.amount), 0) from marts.fct_payout_ledger l
                 where l.batch_id = b.batch_id) as paid,
               (select count(*) from marts.fct_payout_ledger l where l.batch_id = b.batch_id) as paid_lines,
               (select coalesce(sum(r.amount), 0) from payouts.review_lines r
                 where r.batch_id = b.batch_id) as held,
               (select count(*) from payouts.review_lines r where r.batch_id = b.batch_id) as held_lines,
               (select coalesce(sum(d.balance), 0) from payouts.deferred_partners d
                 where d.batch_id = b.batch_id) as deferred,
               (select count(*) from payouts.deferred_partners d
                 where d.batch_id = b.batch_id) as deferred_partners
        from payouts.batches b
        where b.status = 'published' and (%(period)s::text is null or b.period <= %(period)s::text)
        order by b.period
        """,
        {"period": period},
    )
    currencies = _rows(
        conn,
        """
        select b.period, p.payout_currency, count(*) as partners, sum(p.payout_amount) as payout_amount
        from payouts.partner_payouts p
        join payouts.batches b on b.batch_id = p.batch_id and b.status = 'published'
        where %(period)s::text is null or b.period <= %(period)s::text
        group by b.period, p.payout_currency
        order by b.period, p.payout_currency
        """,
        {"period": period},
    )
    if currency is None and batches:
        currency = batches[-1]["program_currency"]

    quality_days = _rows(
        conn,
        """
        with rejected as (
            select _partition_date as day, count(*) as n from staging.stg_raw__rejected_rows group by 1
        ),
        -- repeats by the landing partition that carried them: rows loaded minus the first occurrences kept
        -- (for clicks the incremental first occurrences, not a de-duplication of all history's clicks again)
        kept as (
            select 'crm/deal_stage_history' as entity, _partition_date as day, count(*) as n
            from staging.stg_crm__deal_stage_history group by 2
            union all
            select 'crm/deal_reversals', _partition_date, count(*) from staging.stg_crm__deal_reversals group by 2
            union all
            select 'marketing/activities', _partition_date, count(*) from staging.stg_marketing__activities group by 2
            union all
            select 'links/clicks', _partition_date, count(*) from intermediate.int_touchpoints__clicks group by 2
            union all
            select 'links/conversions', _partition_date, count(*) from staging.stg_links__conversions group by 2
        ),
        duplicates as (
            select b.partition_date as day, sum(b.rows_loaded - coalesce(k.n, 0)) as n
            from raw.load_batches b
            left join kept k on k.entity = b.entity and k.day = b.partition_date
            where b.entity in (
                'crm/deal_stage_history', 'crm/deal_reversals', 'marketing/activities', 'links/clicks',
                'links/conversions'
            )
            group by 1
        ),
        unresolved as (
            select (occurred_at at time zone 'UTC')::date as day, count(*) as n
            from marts.fct_touchpoints
            where touch_type = 'link_click' and account_key is null
            group by 1
        ),
        days as (
            select day from rejected union select day from duplicates where n > 0
            union select day from unresolved
        )
        select d.day, coalesce(r.n, 0)::bigint as rejected_rows, coalesce(p.n, 0)::bigint as duplicate_events,
               coalesce(u.n, 0)::bigint as unresolved_visitors
        from days d
        left join rejected r on r.day = d.day
        left join duplicates p on p.day = d.day
        left join unresolved u on u.day = d.day
        where %(end)s::date is null or d.day < %(end)s::date
        order by d.day
        """,
        {"end": end},
    )
    quality_totals = _rows(
        conn,
        "select check_name, entity, issue_count, description from marts.fct_data_quality "
        "order by check_name, entity",
    )
    return ReportData(
        as_of=as_of,
        period=period,
        program_currency=currency or "",
        partners=partners,
        performance=performance,
        attribution=attribution,
        data_driven=data_driven,
        data_driven_fits=fits,
        data_driven_weights=weights,
        payout_batches=batches,
        payout_currencies=currencies,
        quality_days=quality_days,
        quality_totals=quality_totals,
    )


# --- charts ------------------------------------------------------------------------------------------------


MONEY_AXIS = StrMethodFormatter("{x:,.0f}")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _num(value) -> float:
    """A number for drawing only (never for a figure shown as text)."""
    return float(value) if value is not None else float("nan")


def _month_label(month: dt.date) -> str:
    return month.strftime("%Y-%m")


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666666")
    ax.set_xticks([])
    ax.set_yticks([])


def _grouped_bars(ax, labels: list[str], series: dict[str, list[float]], width_total: float = 0.8) -> None:
    n = max(len(series), 1)
    width = width_total / n
    for i, (name, values) in enumerate(series.items()):
        xs = [x - width_total / 2 + width * (i + 0.5) for x in range(len(labels))]
        ax.bar(xs, values, width=width, label=name)
    ax.set_xticks(range(len(labels)), labels)


# Per-partner charts draw at most this many partners (a chart of a hundred partners is neither readable nor
# cheap to draw); the tables under them list every partner.
CHART_PARTNERS = 10


def _top_partners(revenue: dict[str, Decimal]) -> list[str]:
    """The CHART_PARTNERS partners with the most revenue (ties: partner id), in partner id order."""
    ranked = sorted(revenue, key=lambda p: (-revenue[p], p))
    return sorted(ranked[:CHART_PARTNERS])


def _of_top(title: str, shown: int, total: int) -> str:
    return title if shown == total else f"{title} (top {shown} of {total} partners by attributed revenue)"


def chart_performance(plt, data: ReportData):
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), layout="constrained")
    rows = data.performance
    if not rows:
        for ax in axes:
            _empty(ax, "no partner activity")
        return fig
    months = sorted({r["month"] for r in rows})
    labels = [_month_label(m) for m in months]
    funnel = {
        "referrals": "referrals_submitted",
        "quality leads": "quality_leads",
        "qualified": "qualified_opportunities",
        "won": "deals_won",
    }
    sums = {
        name: [sum(r[col] for r in rows if r["month"] == m) for m in months] for name, col in funnel.items()
    }
    _grouped_bars(axes[0], labels, sums)
    axes[0].yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_title("Funnel per month (all partners)")
    axes[0].legend(fontsize=8)
    revenue: dict[str, Decimal] = defaultdict(Decimal)
    for r in rows:
        revenue[r["partner_id"]] += r["attributed_revenue"] or 0
    partners = _top_partners(revenue)
    for ax, col, title in (
        (axes[1], "conversion_rate", _of_top("Conversion rate per partner", len(partners), len(revenue))),
        (
            axes[2],
            "average_days_to_close",
            _of_top("Average days to close per partner", len(partners), len(revenue)),
        ),
    ):
        drawn = False
        for p in partners:
            points = [(labels[months.index(r["month"])], r[col]) for r in rows if r["partner_id"] == p]
            points = [(m, v) for m, v in points if v is not None]
            if points:
                ax.plot([m for m, _ in points], [_num(v) for _, v in points], marker="o", label=p)
                drawn = True
        ax.set_title(title)
        if col == "conversion_rate":
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        if drawn:
            ax.legend(fontsize=7, ncols=2)
        else:
            _empty(ax, "no value yet")
    return fig


def _attribution_series(data: ReportData) -> tuple[list[str], dict[str, dict[str, Decimal]]]:
    by_model: dict[str, dict[str, Decimal]] = defaultdict(dict)
    for r in data.attribution + (data.data_driven or []):
        by_model[r["model"]][r["partner_id"]] = r["attributed_revenue"]
    models = [m for m in (*RULE_BASED_MODELS, *DATA_DRIVEN_MODELS) if m in by_model]
    models += sorted(m for m in by_model if m not in models)
    return models, {m: by_model[m] for m in models}


def chart_attribution(plt, data: ReportData):
    fig, ax = plt.subplots(figsize=(13, 4.5), layout="constrained")
    models, by_model = _attribution_series(data)
    every = {p for revenue in by_model.values() for p in revenue}
    if not every:
        _empty(ax, "no won deal")
        return fig
    # ranked by the payout model's revenue (the first model present when there is none)
    ranking = by_model.get("payout") or by_model[models[0]]
    partners = _top_partners({p: ranking.get(p, Decimal(0)) for p in every})
    series = {m: [_num(by_model[m].get(p, 0)) for p in partners] for m in models}
    _grouped_bars(ax, partners, series, width_total=0.85)
    ax.yaxis.set_major_formatter(MONEY_AXIS)
    title = _of_top("Attributed revenue per partner and model", len(partners), len(every))
    if data.data_driven is None:
        title += " (rule-based models; the data-driven fit is not available)"
    ax.set_title(f"{title}, {data.program_currency}".rstrip(", "))
    ax.legend(fontsize=8, ncols=4)
    return fig


def chart_payouts(plt, data: ReportData):
    fig, axes = plt.subplots(1, 2, figsize=(13, 4), layout="constrained")
    batches = data.payout_batches
    if not batches:
        for ax in axes:
            _empty(ax, "no published payout batch")
        return fig
    labels = [b["period"] for b in batches]
    _grouped_bars(
        axes[0],
        labels,
        {
            "paid": [_num(b["paid"]) for b in batches],
            "held for review": [_num(b["held"]) for b in batches],
            "deferred (below minimum)": [_num(b["deferred"]) for b in batches],
        },
    )
    axes[0].set_title(f"Payouts per month, {data.program_currency}".rstrip(", "))
    axes[0].yaxis.set_major_formatter(MONEY_AXIS)
    axes[1].yaxis.set_major_formatter(MONEY_AXIS)
    axes[0].legend(fontsize=8)
    currencies = sorted({c["payout_currency"] for c in data.payout_currencies})
    amounts = {(c["period"], c["payout_currency"]): c["payout_amount"] for c in data.payout_currencies}
    _grouped_bars(axes[1], labels, {c: [_num(amounts.get((p, c), 0)) for p in labels] for c in currencies})
    axes[1].set_title("Paid per month in each payout currency")
    if currencies:
        axes[1].legend(fontsize=8)
    return fig


def chart_quality(plt, data: ReportData):
    fig, ax = plt.subplots(figsize=(13, 3.8), layout="constrained")
    days = data.quality_days
    if not days:
        _empty(ax, "no data-quality issue recorded")
        return fig
    xs = [d["day"] for d in days]
    for col, name in (
        ("rejected_rows", "rejected rows"),
        ("duplicate_events", "duplicate events"),
        ("unresolved_visitors", "unresolved visitors"),
    ):
        ax.plot(xs, [d[col] for d in days], marker=".", label=name)
    ax.set_title("Data quality per day")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    return fig


CHART_FUNCS = {
    "performance": chart_performance,
    "attribution": chart_attribution,
    "payouts": chart_payouts,
    "data-quality": chart_quality,
}


def render_charts(data: ReportData) -> dict[str, tuple[bytes, str]]:
    """name -> (PNG bytes, inline SVG text), drawn with fixed settings."""
    import matplotlib

    plt = _pyplot()
    out = {}
    for name in CHARTS:
        # A salt per chart keeps the SVG element ids of different charts apart in one HTML page.
        with matplotlib.rc_context({**RC_PARAMS, "svg.hashsalt": f"{REPORT_NAME}-{name}"}):
            fig = CHART_FUNCS[name](plt, data)
            png, svg = io.BytesIO(), io.StringIO()
            fig.savefig(png, format="png", metadata={"Software": None})
            fig.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
            plt.close(fig)
        text = svg.getvalue()
        # Inline in HTML: without the XML prolog and doctype, and without the RDF metadata block (its
        # namespace URLs are not needed by a browser).
        text = re.sub(r"\s*<metadata>.*?</metadata>", "", text[text.index("<svg") :], flags=re.S)
        out[name] = (png.getvalue(), text)
    return out


# --- text ------------------------------------------------------------------------------------------------------


def money(value) -> str:
    """An amount to the cent for display (the warehouse keeps it exact)."""
    if value is None:
        return ""
    return f"{Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP):,}"


def _plain(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _table(
    headings: Sequence[str], rows: Iterable[Sequence], *, numeric: Sequence[bool] = (), cls: str = ""
) -> str:
    numeric = list(numeric) + [False] * (len(headings) - len(numeric))
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headings)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{html.escape(str(c))}</td>' if n else f"<td>{html.escape(str(c))}</td>"
            for c, n in zip(row, numeric, strict=True)
        )
        body.append(f"<tr>{cells}</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(headings)}">none</td></tr>')
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _rate(value) -> str:
    return "" if value is None else f"{Decimal(value) * 100:.1f}%"


def _days(value) -> str:
    return "" if value is None else f"{Decimal(value):.1f}"


def section_performance(data: ReportData) -> str:
    rows = [
        (
            _month_label(r["month"]),
            r["partner_id"],
            data.partners.get(r["partner_id"], ""),
            r["referrals_submitted"],
            r["quality_leads"],
            r["qualified_opportunities"],
            r["deals_won"],
            _rate(r["conversion_rate"]),
            _days(r["average_days_to_close"]),
            money(r["attributed_revenue"]),
        )
        for r in data.performance
    ]
    months = sorted({r["month"] for r in data.performance})
    totals = [
        (
            _month_label(m),
            *(
                sum(r[c] for r in data.performance if r["month"] == m)
                for c in ("referrals_submitted", "quality_leads", "qualified_opportunities", "deals_won")
            ),
        )
        for m in months
    ]
    return (
        "<p>From <code>marts.fct_partner_performance_monthly</code>: one row per partner and month with activity. "
        "The funnel chart sums the partners' counts per month; conversion rate and days to close are the "
        "mart's values per partner (a gap is a month without a value).</p>"
        + _table(
            ["month", "referrals", "quality leads", "qualified", "won"],
            totals,
            numeric=[False, True, True, True, True],
            cls="totals",
        )
        + "<details open><summary>Per partner and month</summary>"
        + _table(
            [
                "month",
                "partner",
                "name",
                "referrals",
                "quality leads",
                "qualified",
                "won",
                "conversion rate",
                "days to close",
                f"attributed revenue ({data.program_currency})",
            ],
            rows,
            numeric=[False, False, False, True, True, True, True, True, True, True],
        )
        + "</details>"
    )


def section_attribution(data: ReportData) -> str:
    models, by_model = _attribution_series(data)
    partners = sorted({p for revenue in by_model.values() for p in revenue})
    rows = [(p, data.partners.get(p, ""), *(money(by_model[m].get(p, 0)) for m in models)) for p in partners]
    totals = ("total", "", *(money(sum(by_model[m].values(), Decimal(0))) for m in models))
    text = (
        "<p>Sum of <code>attributed_revenue</code> (credit &times; commission base) of won deals per partner and "
        f"model, {html.escape(data.program_currency)}. Rule-based models and <code>payout</code> from "
        "<code>marts.fct_attribution</code>"
    )
    if data.data_driven is None:
        text += (
            '.</p><p class="note">The data-driven fit (Markov, Shapley) is not available: '
            f"<code>{DATA_DRIVEN_TABLE}</code> does not exist in this warehouse yet.</p>"
        )
    else:
        text += f"; data-driven models from <code>{DATA_DRIVEN_TABLE}</code> (analysis only, never paid).</p>"
    text += _table(
        ["partner", "name", *models],
        [*rows, totals] if partners else [],
        numeric=[False, False, *[True] * len(models)],
    )
    if data.data_driven is not None:
        text += "<h3>Data-driven fit</h3>" + _table(
            ["model", "fit date", "window start", "window end", "deals"],
            [
                (
                    f["model"],
                    _plain(f["fit_date"]),
                    _plain(f["window_start"]),
                    _plain(f["window_end"]),
                    f["deals"],
                )
                for f in data.data_driven_fits
            ],
            numeric=[False, False, False, False, True],
        )
        if data.data_driven_weights:
            text += _table(
                ["model", "partner", "global weight"],
                [(w["model"], w["partner_id"], _plain(w["weight"])) for w in data.data_driven_weights],
                numeric=[False, False, True],
            )
    return text


def section_payouts(data: ReportData) -> str:
    cur = data.program_currency
    batches = _table(
        [
            "period",
            "paid lines",
            f"paid ({cur})",
            "held lines",
            f"held ({cur})",
            "deferred partners",
            f"deferred ({cur})",
        ],
        [
            (
                b["period"],
                b["paid_lines"],
                money(b["paid"]),
                b["held_lines"],
                money(b["held"]),
                b["deferred_partners"],
                money(b["deferred"]),
            )
            for b in data.payout_batches
        ],
        numeric=[False, True, True, True, True, True, True],
        cls="totals",
    )
    currencies = _table(
        ["period", "payout currency", "partners", "paid (payout currency)"],
        [
            (c["period"], c["payout_currency"], c["partners"], money(c["payout_amount"]))
            for c in data.payout_currencies
        ],
        numeric=[False, False, True, True],
    )
    return (
        "<p>Published batches only. Paid: the lines of <code>marts.fct_payout_ledger</code>; held: the batch's "
        "review queue (not paid); deferred: partners below the minimum payout (not paid, carried over). The "
        "amounts per payout currency are the partners' transfers (<code>payout_amount</code>, rounded once per "
        "partner by the batch).</p>" + batches + currencies
    )


def section_quality(data: ReportData) -> str:
    days = _table(
        ["day", "rejected rows", "duplicate events", "unresolved visitors"],
        [
            (_plain(d["day"]), d["rejected_rows"], d["duplicate_events"], d["unresolved_visitors"])
            for d in data.quality_days
        ],
        numeric=[False, True, True, True],
    )
    totals = _table(
        ["check", "entity", "count", "what it counts"],
        [(q["check_name"], q["entity"], q["issue_count"], q["description"]) for q in data.quality_totals],
        numeric=[False, False, True, False],
    )
    return (
        "<p>Per day: rejected rows by landing partition (<code>staging.stg_raw__rejected_rows</code>), "
        "duplicate events by the partition of their first occurrence (the staging event models' "
        "<code>_duplicate_count</code>), unresolved visitors by the UTC day of the click "
        "(<code>marts.fct_touchpoints</code>). Days without any issue are left out.</p>"
        "<details><summary>Per day</summary>"
        + days
        + "</details><h3>Current counts (<code>marts.fct_data_quality</code>)</h3>"
        + "<p>The whole warehouse as loaded now"
        + (", whatever the period" if data.period else "")
        + ".</p>"
        + totals
    )


CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 2em auto; max-width: 1320px; color: #222; }
h1 { font-size: 1.5em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 2px 8px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 0; } figure svg { width: 100%; height: auto; }
.note { color: #8a5a00; }
"""


def render_html(data: ReportData, charts: dict[str, tuple[bytes, str]], png_names: dict[str, str]) -> str:
    scope = f"months up to and including {data.period}" if data.period else "every month in the warehouse"
    as_of = data.as_of.isoformat() if data.as_of else "no run yet"
    sections = [
        ("performance", "Partner performance over months", section_performance(data)),
        ("attribution", "Attributed revenue per partner and model", section_attribution(data)),
        ("payouts", "Payouts per month and currency", section_payouts(data)),
        ("data-quality", "Data quality per day", section_quality(data)),
    ]
    body = []
    for name, title, text in sections:
        body.append(
            f'<section id="{name}"><h2>{html.escape(title)}</h2>'
            f'<figure class="chart" data-chart="{name}">{charts[name][1]}'
            f'<figcaption>Also as <a href="{html.escape(png_names[name])}">{html.escape(png_names[name])}</a>'
            "</figcaption></figure>"
            f"{text}</section>"
        )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>Partner program report as of {as_of}</title>"
        f"<style>{CSS}</style></head><body>"
        f"<h1>Partner program report</h1>"
        f'<p id="scope">As of {as_of} (the date of the last nightly run); {scope}. '
        f"Amounts in {html.escape(data.program_currency) or 'the program currency'} unless a column says "
        "otherwise, shown to the cent (the warehouse keeps them exact).</p>"
        + "".join(body)
        + "</body></html>\n"
    )


# --- writing -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    pngs: list[Path]
    as_of: dt.date | None = None  # the data's date (the last nightly run), shown in the report


def file_names(period: str | None) -> tuple[str, dict[str, str]]:
    stem = f"{REPORT_NAME}-{period}" if period else REPORT_NAME
    return f"{stem}.html", {name: f"{stem}-{name}.png" for name in CHARTS}


def write_report(conn: psycopg.Connection, out_dir: Path, period: str | None = None) -> ReportFiles:
    """Build the report from the warehouse and write the HTML and PNG files into out_dir (created)."""
    data = read_report_data(conn, period)
    charts = render_charts(data)
    html_name, png_names = file_names(period)
    page = render_html(data, charts, png_names)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        pngs = []
        for name in CHARTS:
            path = out_dir / png_names[name]
            _write(path, charts[name][0])
            pngs.append(path)
        html_path = out_dir / html_name
        _write(html_path, page.encode("utf-8"))
    except OSError as exc:
        raise ReportError(f"cannot write the report to {out_dir}: {exc.strerror or exc}") from None
    return ReportFiles(html=html_path, pngs=pngs, as_of=data.as_of)


def _write(path: Path, content: bytes) -> None:
    """Write through a temporary file, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(content)
    tmp.replace(path)


__all__ = ["ReportError", "ReportFiles", "read_report_data", "write_report"]
