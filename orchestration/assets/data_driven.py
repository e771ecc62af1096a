"""Data-driven attribution (analysis only, see docs/analytics.md): after dbt, fit the Markov removal effect and
the simplified Shapley value on the resolved deals of marts.fct_deal_paths in the fit's window, and replace, in
one transaction, the tables marts.fct_attribution_data_driven (per-deal credits) and
marts.dim_partner_weights_data_driven (global weights). The math lives in `referral_pipeline.data_driven`."""

import datetime as dt
import decimal
from dataclasses import dataclass
from decimal import Decimal

import psycopg
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Failure,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from referral_pipeline import data_driven

from ..partitions import daily_partitions, run_date, single_run_backfill
from ..resources import PipelineResource

PATHS = AssetKey(["marts", "fct_deal_paths"])  # dbt asset keys are [schema, model]
CREDITS = AssetKey(["marts", "fct_attribution_data_driven"])
WEIGHTS = AssetKey(["marts", "dim_partner_weights_data_driven"])

DDL = """
create table if not exists marts.fct_attribution_data_driven (
    deal_id text not null,
    partner_id text not null,
    model text not null check (model in ('markov', 'shapley')),
    credit numeric(18, 15) not null check (credit between 0 and 1),
    is_won boolean not null,
    attributed_revenue numeric not null,
    fit_date date not null,
    window_start date not null,
    window_end date not null,
    primary key (deal_id, partner_id, model)
);
create table if not exists marts.dim_partner_weights_data_driven (
    model text not null check (model in ('markov', 'shapley')),
    partner_id text not null,
    model_score numeric(30, 15) not null,
    weight numeric(18, 15) not null check (weight between 0 and 1),
    paths integer not null,
    conversions integer not null,
    fit_date date not null,
    window_start date not null,
    window_end date not null,
    primary key (model, partner_id)
);
"""


@dataclass
class _Deal:
    deal_id: str
    partners: list[str]
    outcome: str
    closed_on: dt.date | None
    is_won: bool
    commission_base: Decimal


def read_deals(conn: psycopg.Connection) -> list[_Deal]:
    """Every deal of marts.fct_deal_paths with its partners in path order."""
    deals: dict[str, _Deal] = {}
    rows = conn.execute(
        "select deal_id, partner_id, outcome, closed_on, is_won, commission_base from marts.fct_deal_paths "
        'order by deal_id collate "C", path_position'
    )
    for deal_id, partner_id, outcome, closed_on, is_won, base in rows:
        deal = deals.get(deal_id)
        if deal is None:
            deal = deals[deal_id] = _Deal(deal_id, [], outcome, closed_on, bool(is_won), base)
        deal.partners.append(partner_id)
    return list(deals.values())


def _revenue(credit: Decimal, deal: _Deal) -> Decimal:
    """credit x commission base, exact (never rounded); 0 unless won."""
    if not deal.is_won:
        return Decimal(0)
    with decimal.localcontext() as ctx:
        ctx.prec = 1000
        ctx.traps[decimal.Inexact] = True
        return credit * deal.commission_base


def refit(url: str, fit_date: dt.date) -> dict:
    """Fit both models on the window ending the day before `fit_date` and replace both tables in one
    transaction. Returns a summary for the run's metadata."""
    window_start, window_end = data_driven.fit_window(fit_date)
    with psycopg.connect(url) as conn:
        deals = read_deals(conn)
        resolved = [
            data_driven.DealPath(d.deal_id, tuple(d.partners), d.outcome == "won")
            for d in deals
            if d.outcome in ("won", "lost") and d.closed_on and window_start <= d.closed_on <= window_end
        ]
        result = data_driven.fit(resolved)
        partners = sorted({p for d in deals for p in d.partners})
        dates = (fit_date, window_start, window_end)
        with conn.transaction():
            # dbt made the schema; creating it here (even `if not exists`) would need CREATE on the database,
            # which a least-privilege login does not have (docs/operations.md, Least-privilege roles).
            if conn.execute("select to_regnamespace('marts') is null").fetchone()[0]:
                conn.execute("create schema marts")
            conn.execute(DDL)
            conn.execute(
                "lock table marts.fct_attribution_data_driven, marts.dim_partner_weights_data_driven "
                "in exclusive mode"
            )
            conn.execute("delete from marts.fct_attribution_data_driven")
            conn.execute("delete from marts.dim_partner_weights_data_driven")
            with conn.cursor().copy(
                "copy marts.dim_partner_weights_data_driven (model, partner_id, model_score, weight, paths, "
                "conversions, fit_date, window_start, window_end) from stdin"
            ) as copy:
                for model in data_driven.MODELS:
                    m = result.models[model]
                    for p in partners:
                        copy.write_row(
                            (
                                model,
                                p,
                                data_driven.to_decimal(m.scores.get(p, 0.0)),
                                m.weights.get(p, Decimal(0)),
                                result.partner_paths.get(p, 0),
                                result.partner_conversions.get(p, 0),
                                *dates,
                            )
                        )
            with conn.cursor().copy(
                "copy marts.fct_attribution_data_driven (deal_id, partner_id, model, credit, is_won, "
                "attributed_revenue, fit_date, window_start, window_end) from stdin"
            ) as copy:
                for model in data_driven.MODELS:
                    weights = result.models[model].weights
                    for d in deals:
                        for p, credit in sorted(data_driven.deal_credits(d.partners, weights).items()):
                            copy.write_row(
                                (d.deal_id, p, model, credit, d.is_won, _revenue(credit, d), *dates)
                            )
            bad = conn.execute(
                "select deal_id, model, sum(credit) from marts.fct_attribution_data_driven "
                "group by deal_id, model having sum(credit) <> 1 order by 1, 2 limit 3"
            ).fetchall()
            if bad:
                raise Failure(
                    description="data-driven credits do not sum to 1 for "
                    + ", ".join(f"{d} ({m}: {s})" for d, m, s in bad)
                    + "; nothing was replaced"
                )
    return {
        "fit_date": fit_date.isoformat(),
        "window_start": window_start.isoformat(),
        "window_end": window_end.isoformat(),
        "deals_credited": len(deals),
        "resolved_paths": result.paths,
        "conversions": result.conversions,
        "weights": {
            model: {p: str(w) for p, w in result.models[model].weights.items() if w > 0}
            for model in data_driven.MODELS
        },
    }


@multi_asset(
    name="data_driven_attribution",
    group_name="marts",
    specs=[
        AssetSpec(
            CREDITS,
            deps=[PATHS],
            kinds={"python", "postgres"},
            description=(
                "Per-deal credits of the data-driven models (markov, shapley), for analysis only: each deal's "
                "partners share 1 in proportion to the fit's global weights (see docs/analytics.md)."
            ),
        ),
        AssetSpec(
            WEIGHTS,
            deps=[PATHS],
            kinds={"python", "postgres"},
            description=(
                "Global partner weights of the Markov removal effect and the simplified Shapley value, fitted on "
                "deals won or lost in the 12 months before the run date (see docs/analytics.md)."
            ),
        ),
    ],
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
)
def data_driven_attribution(context: AssetExecutionContext, pipeline: PipelineResource):
    """Fit on the window ending the day before the run date (the fit date) and replace both tables at once."""
    summary = refit(pipeline.url, run_date(context))
    context.log.info(
        f"data-driven attribution fitted on {summary['resolved_paths']} resolved deals "
        f"({summary['conversions']} won) from {summary['window_start']} to {summary['window_end']}"
    )
    meta = {k: MetadataValue.json(v) if isinstance(v, dict) else v for k, v in summary.items()}
    yield MaterializeResult(asset_key=CREDITS, metadata=meta)
    yield MaterializeResult(asset_key=WEIGHTS, metadata=meta)


assets = [data_driven_attribution]
