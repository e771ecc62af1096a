"""Property: over random sequences of runs, changing entitlements and partner states, no event is ever paid more
than its entitlement, every paid line settles its event exactly, and the published files equal the ledger."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_payout_helpers import event, read_published, set_events, set_partners, setup_inputs

import payout_exports

EVENTS = {
    "commission:D-1:P1": "P1",
    "qualified_bonus:D-1:P1": "P1",
    "qualified_bonus:D-2:P2": "P2",
    "referral_bonus:R-3": "P2",
}
AMOUNTS = st.sampled_from([None, "0.00", "40.00", "75.50", "120.00", "300.00"])  # None: not produced
step = st.fixed_dictionaries(
    {
        "amounts": st.fixed_dictionaries({e: AMOUNTS for e in EVENTS}),
        "payable_month": st.fixed_dictionaries({e: st.integers(1, 3) for e in EVENTS}),
        "active": st.fixed_dictionaries({p: st.booleans() for p in ("P1", "P2")}),
        "months": st.integers(1, 2),  # how far the next run is
    }
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=5), minimum=st.sampled_from(["0", "100"]))
def test_paid_never_exceeds_entitlement_and_files_equal_ledger(warehouse_url, steps, minimum):
    url = warehouse_url
    with psycopg.connect(url) as conn:
        conn.execute("drop schema if exists payouts cascade")
    setup_inputs(url, minimum=minimum)
    with tempfile.TemporaryDirectory(prefix="payout-prop-") as root:
        check_runs(url, steps, minimum, root)


def check_runs(url: str, steps: list[dict], minimum: str, root: str) -> None:
    paid: dict[str, Decimal] = defaultdict(Decimal)
    highest: dict[str, Decimal] = defaultdict(Decimal)
    month = 2
    for s in steps:
        current = {e: Decimal(a) for e, a in s["amounts"].items() if a is not None}
        set_events(
            url,
            [
                event(e, EVENTS[e], str(a), f"2025-{s['payable_month'][e]:02d}-15T00:00:00Z")
                for e, a in current.items()
            ],
        )
        set_partners(
            url, [(p, p, "active" if on else "suspended", True, "USD") for p, on in s["active"].items()]
        )
        for e, a in current.items():
            highest[e] = max(highest[e], a)
        month += s["months"]
        run = dt.date(2025 + (month - 1) // 12, (month - 1) % 12 + 1, 1)
        results = payout_exports.publish_due(url, run, root, code_version="p", log=lambda _: None)
        for r in results:
            for line in read_published(Path(root), r.period, "payout_lines.csv"):
                e, amount = line["event_id"], Decimal(line["amount"])
                assert Decimal(line["previously_paid"]) == paid[e]
                assert Decimal(line["entitlement"]) == current.get(e, Decimal(0))
                paid[e] += amount
                assert paid[e] == current.get(e, Decimal(0))
                if amount > 0:
                    assert s["active"][line["partner_id"]]
            for p in read_published(Path(root), r.period, "payouts.csv"):
                assert Decimal(p["amount"]) >= Decimal(minimum)
        for e, total in paid.items():
            assert total <= highest[e]
        assert payout_exports.reconcile_ledger(url) == []
        assert payout_exports.verify_published(url, root) == []
