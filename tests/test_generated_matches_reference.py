"""The dbt marts agree with the independent reference model (tests/reference_model.py) on generated datasets,
not only on the golden example: the rules of SPEC sections 4 to 7 are the bar.

Each case generates sample exports, loads them day by day, writes the rules, runs `dbt build` once and compares
marts.fct_touchpoints, marts.fct_attribution and marts.fct_reward_events with the reference, row by row. One
case uses two rules versions (a change of model, lookbacks, spam threshold, tiers, hold days, cap and eligible
deal types part-way through), and one adds an attribution override (SPEC section 8)."""

from __future__ import annotations

import datetime as dt
import subprocess
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from referral_pipeline.config import DEFAULT_RULES_FILE
from referral_pipeline.entities import ENTITIES
from referral_pipeline.generate import generate
from referral_pipeline.landing import load_partition
from referral_pipeline.rules import ProgramRules, parse_rules, write_rules
from referral_pipeline.warehouse import ensure_schema

from golden import assert_same_rows, dbt_build, fmt, query_rows
from reference_model import Reference, compute

KEY = "generated-test-key"
CREDIT_TOLERANCE = Decimal("1e-18")  # SPEC 6: at least 20 significant digits

TWO_VERSIONS = """
program_currency: USD
payout_period: monthly
free_mail_domains: [gmail.com, yahoo.com, outlook.com, hotmail.com, icloud.com, aol.com, proton.me, gmx.com]
versions:
  - effective_from: 2024-01-01
    attribution_model: linear
    time_decay_half_life_days: 7
    lookback_days: {referral: 180, marketing: 90, link_click: 30}
    max_clicks_per_ip_per_day: 20
    qualified_stage: qualified
    eligible_deal_types: [new_business]
    hold_days: {referral_bonus: 0, qualified_bonus: 0, commission: 30}
    clawback_days: 90
    commission_cap_per_deal: null
    minimum_payout: 100
    quality_lead: {min_employee_count: 50, eligible_countries: []}
    tiers:
      - {name: registered, min_trailing_revenue: 0,      commission_rate: 0.10, referral_bonus: 50,  qualified_bonus: 250}
      - {name: silver,     min_trailing_revenue: 50000,  commission_rate: 0.15, referral_bonus: 75,  qualified_bonus: 400}
      - {name: gold,       min_trailing_revenue: 250000, commission_rate: 0.20, referral_bonus: 100, qualified_bonus: 500}
  - effective_from: 2024-12-05
    attribution_model: time_decay
    time_decay_half_life_days: 3.5
    lookback_days: {referral: 120, marketing: 45, link_click: 14}
    max_clicks_per_ip_per_day: 6
    qualified_stage: qualified
    eligible_deal_types: [new_business, expansion]
    hold_days: {referral_bonus: 2, qualified_bonus: 5, commission: 45}
    clawback_days: 30
    commission_cap_per_deal: 1000
    minimum_payout: 50
    quality_lead: {min_employee_count: 20, eligible_countries: []}
    tiers:
      - {name: registered, min_trailing_revenue: 0,     commission_rate: 0.12, referral_bonus: 60,  qualified_bonus: 300}
      - {name: silver,     min_trailing_revenue: 20000, commission_rate: 0.17, referral_bonus: 80,  qualified_bonus: 450}
      - {name: gold,       min_trailing_revenue: 150000, commission_rate: 0.225, referral_bonus: 120, qualified_bonus: 600}
"""

# Low tier thresholds (tiers change within the dataset), a country filter on quality leads, expansion deals
# eligible, a binding cap and a changed qualified stage from the second version on.
LOW_THRESHOLDS = """
program_currency: USD
payout_period: monthly
free_mail_domains: [gmail.com, yahoo.com, outlook.com, hotmail.com, icloud.com, aol.com, proton.me, gmx.com, gmx.de]
versions:
  - effective_from: 2024-01-01
    attribution_model: first_touch
    time_decay_half_life_days: 10
    lookback_days: {referral: 365, marketing: 60, link_click: 45}
    max_clicks_per_ip_per_day: 3
    qualified_stage: appointment
    eligible_deal_types: [new_business, expansion]
    hold_days: {referral_bonus: 1, qualified_bonus: 2, commission: 10}
    clawback_days: 120
    commission_cap_per_deal: 2500.5
    minimum_payout: 10
    quality_lead: {min_employee_count: 10, eligible_countries: [us, GB, DE]}
    tiers:
      - {name: registered, min_trailing_revenue: 0,    commission_rate: 0.05, referral_bonus: 10, qualified_bonus: 33.333}
      - {name: silver,     min_trailing_revenue: 1000, commission_rate: 0.075, referral_bonus: 20, qualified_bonus: 66.667}
      - {name: gold,       min_trailing_revenue: 8000, commission_rate: 0.125, referral_bonus: 30, qualified_bonus: 99.995}
  - effective_from: 2025-02-14
    attribution_model: last_touch
    time_decay_half_life_days: 10
    lookback_days: {referral: 365, marketing: 60, link_click: 45}
    max_clicks_per_ip_per_day: 3
    qualified_stage: qualified
    eligible_deal_types: [new_business, renewal]
    hold_days: {referral_bonus: 0, qualified_bonus: 0, commission: 0}
    clawback_days: 15
    commission_cap_per_deal: null
    minimum_payout: 10
    quality_lead: {min_employee_count: 10, eligible_countries: []}
    tiers:
      - {name: registered, min_trailing_revenue: 0,    commission_rate: 0.05, referral_bonus: 10, qualified_bonus: 33.333}
      - {name: bronze,     min_trailing_revenue: 500,  commission_rate: 0.06, referral_bonus: 15, qualified_bonus: 44.445}
      - {name: gold,       min_trailing_revenue: 8000, commission_rate: 0.125, referral_bonus: 30, qualified_bonus: 99.995}
"""


@dataclass(frozen=True)
class Case:
    name: str
    start: dt.date
    days: int
    seed: int
    rules_text: str

    @property
    def last_day(self) -> dt.date:
        return self.start + dt.timedelta(days=self.days - 1)


CASES = [
    Case("spring-default-rules", dt.date(2025, 3, 1), 45, 11, DEFAULT_RULES_FILE.read_text(encoding="utf-8")),
    Case("winter-two-versions", dt.date(2024, 11, 15), 40, 23, TWO_VERSIONS),
    Case("low-thresholds", dt.date(2025, 1, 10), 75, 5, LOW_THRESHOLDS),
]


@dataclass
class Built:
    url: str
    rules: ProgramRules
    dbt: subprocess.CompletedProcess
    reference: Reference


def partition_days(landing: Path) -> list[dt.date]:
    return sorted({dt.date.fromisoformat(p.name[3:]) for p in landing.glob("*/*/dt=*") if p.is_dir()})


def build_warehouse(new_database, case: Case, landing: Path, work: Path, overrides=()) -> Built:
    """Load every generated partition in date order, write the rules and any overrides, build once."""
    url = new_database("gen")
    ensure_schema(url)
    for day in partition_days(landing):
        for e in ENTITIES:
            load_partition(url, e, day, str(landing), ip_hash_key=KEY, log=lambda _m: None)
    rules = parse_rules(case.rules_text, f"{case.name}.yml")
    with psycopg.connect(url) as conn:
        write_rules(conn, rules)
        for set_id, (deal_id, credits) in enumerate(overrides, start=1):
            for partner_id, credit in credits.items():
                conn.execute(
                    "insert into controls.attribution_overrides"
                    " (override_set_id, deal_id, partner_id, credit, created_by, reason)"
                    " values (%s, %s, %s, %s, 'test', 'override case')",
                    (set_id, deal_id, partner_id, credit),
                )
    proc = dbt_build(url, work, case.last_day)
    return Built(url, rules, proc, compute(url, rules))


@pytest.fixture(scope="module")
def landings(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for case in CASES:
        folder = tmp_path_factory.mktemp(f"landing-{case.name}")
        generate(folder, case.start, case.days, scale="small", seed=case.seed, log=lambda _m: None)
        out[case.name] = folder
    return out


@pytest.fixture(scope="module", params=CASES, ids=lambda c: c.name)
def built(request, new_database, landings, tmp_path_factory) -> Built:
    case: Case = request.param
    return build_warehouse(new_database, case, landings[case.name], tmp_path_factory.mktemp("dbt"))


def mart(url: str, sql: str) -> list[dict[str, str]]:
    with psycopg.connect(url) as conn:
        conn.execute("set time zone 'UTC'")
        return query_rows(conn, sql)


def as_text(rows: list[dict]) -> list[dict[str, str]]:
    return [{k: fmt(v) for k, v in r.items()} for r in rows]


TP_COLUMNS = ("touch_type", "partner_id", "account_key", "occurred_at", "exclusion_reason")
EVENT_COLUMNS = (
    "event_type",
    "partner_id",
    "deal_id",
    "referral_id",
    "amount",
    "earned_at",
    "payable_at",
    "tier",
    "rules_version",
)


def assert_touchpoints(b: Built) -> None:
    assert_same_rows(
        mart(b.url, "select touch_id, " + ", ".join(TP_COLUMNS) + " from marts.fct_touchpoints"),
        as_text(b.reference.touchpoints),
        key=("touch_id",),
        columns=TP_COLUMNS,
        what="fct_touchpoints vs reference",
    )


def assert_attribution(b: Built) -> None:
    assert_same_rows(
        mart(
            b.url, "select deal_id, partner_id, model, credit, touch_count, is_won from marts.fct_attribution"
        ),
        as_text(b.reference.attribution),
        key=("deal_id", "partner_id", "model"),
        columns=("credit", "touch_count", "is_won"),
        what="fct_attribution vs reference",
        decimals={"credit": CREDIT_TOLERANCE},
    )


def assert_reward_events(b: Built) -> None:
    assert_same_rows(
        mart(b.url, "select event_id, " + ", ".join(EVENT_COLUMNS) + " from marts.fct_reward_events"),
        as_text(b.reference.reward_events),
        key=("event_id",),
        columns=EVENT_COLUMNS,
        what="fct_reward_events vs reference",
    )


def test_dataset_is_not_trivial(built: Built) -> None:
    """The comparison means something only if the dataset exercises the rules."""
    ref = built.reference
    reasons = {t["exclusion_reason"] for t in ref.touchpoints}
    assert {None, "partner_not_active", "click_spam"} <= reasons, reasons
    assert len({r["deal_id"] for r in ref.attribution}) >= 5
    assert {e["event_type"] for e in ref.reward_events} == {"referral_bonus", "qualified_bonus", "commission"}


def test_dbt_build_succeeds(built: Built) -> None:
    assert built.dbt.returncode == 0, built.dbt.stdout[-6000:] + built.dbt.stderr[-2000:]


def test_touchpoints_match_reference(built: Built) -> None:
    assert_touchpoints(built)


def test_attribution_matches_reference(built: Built) -> None:
    assert_attribution(built)


def test_reward_events_match_reference(built: Built) -> None:
    assert_reward_events(built)


def _override_targets(ref: Reference) -> tuple[str, dict[str, Decimal], str, dict[str, Decimal]]:
    """Deal A: won, with commissions; 0.7 of it goes to its first payout partner, 0.3 to a partner not on
    its payout. Deal B: won with a base > 0, of an eligible type, with no credit: it all goes to one partner."""
    partners = sorted({t["partner_id"] for t in ref.touchpoints})
    commissioned = sorted({e["deal_id"] for e in ref.reward_events if e["event_type"] == "commission"})
    assert commissioned, "the dataset has no commission to override"
    deal_a = commissioned[0]
    owner = sorted(ref.payout_credits[deal_a])[0]
    other = next(p for p in partners if p not in ref.payout_credits[deal_a])
    unpaid = [
        k
        for k, d in sorted(ref.deals.items())
        if d["won"]
        and d["commission_base"] > 0
        and d["deal_type"] == "new_business"
        and not ref.payout_credits.get(k)
    ]
    assert unpaid, "the dataset has no won deal without credit"
    return deal_a, {owner: Decimal("0.7"), other: Decimal("0.3")}, unpaid[-1], {other: Decimal(1)}


@pytest.mark.parametrize("built", [CASES[0]], indirect=True, ids=lambda c: c.name)
def test_attribution_override_moves_payout_credit_and_commission(
    built: Built, new_database, landings, tmp_path_factory
) -> None:
    """SPEC 6/8: the latest override set of a deal replaces its payout credit, even where the path is empty;
    commissions follow it."""
    case = CASES[0]
    deal_a, credits_a, deal_b, credits_b = _override_targets(built.reference)
    before = {
        e["partner_id"]: e["amount"]
        for e in built.reference.reward_events
        if e["event_id"].startswith(f"commission:{deal_a}:")
    }
    owner = next(iter(credits_a))
    stale = {owner: Decimal(1)}  # an earlier set for deal A, superseded by the later one
    overrides = [(deal_a, stale), (deal_b, credits_b), (deal_a, credits_a)]
    work = tmp_path_factory.mktemp("dbt")
    b = build_warehouse(new_database, case, landings[case.name], work, overrides=overrides)
    assert b.dbt.returncode == 0, b.dbt.stdout[-6000:] + b.dbt.stderr[-2000:]

    for deal_id, credits in ((deal_a, credits_a), (deal_b, credits_b)):
        sql = f"select partner_id, credit from marts.fct_attribution where deal_id = '{deal_id}' and model = 'payout'"
        assert {r["partner_id"]: Decimal(r["credit"]) for r in mart(b.url, sql)} == credits, deal_id
        sql = f"select partner_id, amount from marts.fct_reward_events where event_id like 'commission:{deal_id}:%'"
        got = {r["partner_id"]: Decimal(r["amount"]) for r in mart(b.url, sql)}
        assert set(got) == set(credits), (deal_id, got)
        assert all(amount > 0 for amount in got.values()), (deal_id, got)
    # The owner's tier for this event is unchanged (its trailing window ends before the deal's month), so its
    # commission scales with its credit.
    sql = f"select amount from marts.fct_reward_events where event_id = 'commission:{deal_a}:{owner}'"
    (after,) = [Decimal(r["amount"]) for r in mart(b.url, sql)]
    scaled = before[owner] * credits_a[owner] / built.reference.payout_credits[deal_a][owner]
    assert abs(after - scaled) <= Decimal("0.01"), (after, scaled)
    assert_touchpoints(b)
    assert_attribution(b)
    assert_reward_events(b)
