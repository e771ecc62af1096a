"""The pure-Python reference model (tests/reference_model.py) reproduces the golden example's touchpoints,
attribution credits and reward events (SPEC sections 4 to 7) from the loaded landing zone."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from referral_pipeline.rules import load_rules

from golden import assert_same_rows, fmt, load_days, read_csv
from reference_model import Reference, compute

FIRST_DAY, LAST_DAY = date(2025, 1, 1), date(2025, 3, 1)
KEY = "golden-test-key"


def load_landing(url: str, landing: Path, first: date, last: date) -> None:
    load_days(url, landing, first, last, key=KEY)


def as_text(rows: list[dict]) -> list[dict[str, str]]:
    return [{k: fmt(v) for k, v in r.items()} for r in rows]


@pytest.fixture(scope="module")
def golden_reference(golden_dir: Path, new_database) -> Reference:
    from referral_pipeline.warehouse import ensure_schema

    url = new_database("ref")
    ensure_schema(url)
    load_landing(url, golden_dir / "landing", FIRST_DAY, LAST_DAY)
    return compute(url, load_rules(golden_dir / "program_rules.yml"))


def test_touchpoints_match_golden(golden_reference: Reference, golden_dir: Path) -> None:
    assert_same_rows(
        as_text(golden_reference.touchpoints),
        read_csv(golden_dir / "expected_touchpoints.csv"),
        key=("touch_id",),
        columns=("touch_type", "partner_id", "account_key", "occurred_at", "exclusion_reason"),
        what="touchpoints",
    )


def test_attribution_matches_golden(golden_reference: Reference, golden_dir: Path) -> None:
    assert_same_rows(
        as_text(golden_reference.attribution),
        read_csv(golden_dir / "expected_attribution.csv"),
        key=("deal_id", "partner_id", "model"),
        columns=("credit", "touch_count", "is_won"),
        what="attribution",
        decimals={"credit": Decimal("1e-9")},
    )


def test_credits_sum_to_one(golden_reference: Reference) -> None:
    """SPEC 6: each model gives weights summing to 1 (at least 20 significant digits)."""
    sums: dict[tuple[str, str], Decimal] = {}
    for r in golden_reference.attribution:
        k = (r["deal_id"], r["model"])
        sums[k] = sums.get(k, Decimal(0)) + r["credit"]
    assert sums and all(abs(s - 1) < Decimal("1e-20") for s in sums.values()), sums


def test_reward_events_match_golden(golden_reference: Reference, golden_dir: Path) -> None:
    assert_same_rows(
        as_text(golden_reference.reward_events),
        read_csv(golden_dir / "expected_reward_events.csv"),
        key=("event_id",),
        columns=(
            "event_type",
            "partner_id",
            "deal_id",
            "referral_id",
            "amount",
            "earned_at",
            "payable_at",
            "tier",
            "rules_version",
        ),
        what="reward events",
    )
