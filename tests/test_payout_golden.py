"""The golden example's payout batches (SPEC section 9), run day by day like the nightly job.

Inputs. The payout step reads the reward events as computed on the day of the run. The golden folder holds the
events after the last run (2025-03-01) only, which is what batch 2025-02 is computed from. Batch 2025-01 was
computed on 2025-02-01, when deal D-00020 was not yet deleted: its event qualified_bonus:D-00020:PTR-0001
(250.00, paid in January and clawed back in February) is missing from the final events. So the runs up to
2025-02-01 use the final events plus every January-payable event of the expected batch 2025-01 (lines and
review queue) with its entitlement then; this changes only that one event. Partners and fx rates are the latest
records of the landing partitions loaded up to the run's date.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from test_payout_helpers import (
    golden_partners,
    golden_rates,
    read_csv_file,
    read_published,
    set_events,
    set_partners,
    set_rates,
    setup_inputs,
)

import payout_exports
from referral_pipeline.warehouse import ensure_schema

FILES = {
    "payouts.csv": "expected_payouts.csv",
    "payout_lines.csv": "expected_payout_lines.csv",
    "review_queue.csv": "expected_review_queue.csv",
    "deferred.csv": "expected_deferred.csv",
}


def events_as_of(golden: Path, run_date: dt.date) -> list[dict]:
    final = {e["event_id"]: e for e in read_csv_file(golden / "expected_reward_events.csv")}
    if run_date > dt.date(2025, 2, 1):
        return list(final.values())
    then = dict(final)
    for name in ("expected_payout_lines.csv", "expected_review_queue.csv"):
        for line in read_csv_file(golden / name):
            if line["period"] == "2025-01":
                then[line["event_id"]] = {**line, "amount": line["entitlement"]}
    return list(then.values())


def run_day(url: str, golden: Path, day: dt.date, export: str | Path) -> list[payout_exports.BatchResult]:
    set_events(url, events_as_of(golden, day))
    set_partners(url, golden_partners(golden, day))
    set_rates(url, golden_rates(golden, day))
    return payout_exports.publish_due(url, day, str(export), code_version="test", log=lambda _: None)


@pytest.fixture(scope="module")
def golden_run(new_database, golden_dir, tmp_path_factory):
    """Every day from 2025-01-01 to 2025-03-01; returns (url, export root, {day: published batch ids}).
    Shared by the tests of this module, which only read what it published."""
    warehouse_url = new_database("payout_golden")
    ensure_schema(warehouse_url)
    tmp_path = tmp_path_factory.mktemp("golden")
    setup_inputs(warehouse_url, (golden_dir / "program_rules.yml").read_text())
    published = {}
    day = dt.date(2025, 1, 1)
    while day <= dt.date(2025, 3, 1):
        published[day] = [b.batch_id for b in run_day(warehouse_url, golden_dir, day, tmp_path / "exports")]
        day += dt.timedelta(days=1)
    return warehouse_url, tmp_path / "exports", published


def test_only_the_first_of_each_month_publishes(golden_run):
    _, _, published = golden_run
    assert {d: b for d, b in published.items() if b} == {
        dt.date(2025, 2, 1): ["batch-2025-01"],
        dt.date(2025, 3, 1): ["batch-2025-02"],
    }


@pytest.mark.parametrize("period", ["2025-01", "2025-02"])
@pytest.mark.parametrize("name", sorted(FILES))
def test_files_equal_expected(golden_run, golden_dir, period, name):
    _, root, _ = golden_run
    expected = [r for r in read_csv_file(golden_dir / FILES[name]) if r.pop("period") == period]
    got = read_published(root, period, name)
    for row in got:
        assert row.pop("period") == period
    # batch_id values are placeholders in the golden files; ours have the same form
    assert [r["batch_id"] for r in got] == [f"batch-{period}"] * len(got)
    assert [r["batch_id"] for r in expected] == [f"batch-{period}"] * len(expected)
    assert got == expected


def test_batches_and_manifests_equal_expected(golden_run, golden_dir):
    url, root, _ = golden_run
    for exp in read_csv_file(golden_dir / "expected_batches.csv"):
        manifest = json.loads((root / f"period={exp['period']}" / "manifest.json").read_text())
        assert manifest["period"] == exp["period"]
        assert manifest["cutoff"] == exp["cutoff"]
        assert manifest["rules_version"] == "2024-01-01"
        assert manifest["code_version"] == "test"
        totals = manifest["control_totals"]
        assert totals["partner_count"] == int(exp["partner_count"])
        assert totals["line_count"] == int(exp["line_count"])
        assert totals["program_amount"] == exp["total_amount"]
        rows = {f["name"]: f["rows"] for f in manifest["files"]}
        assert rows["review_queue.csv"] == int(exp["review_count"])
        assert rows["deferred.csv"] == int(exp["deferred_count"])
        assert [f["name"] for f in manifest["files"]] == [
            "payouts.csv",
            "payout_lines.csv",
            "review_queue.csv",
            "deferred.csv",
        ]
        assert payout_exports.reconcile_batch(url, str(root), manifest["batch_id"]) == []
    jan = json.loads((root / "period=2025-01" / "manifest.json").read_text())
    # payout amounts per currency, summed from expected_payouts.csv by hand
    assert jan["control_totals"]["amount_by_currency"] == {"EUR": "735.14", "GBP": "543.27", "USD": "2633.34"}
    assert payout_exports.verify_published(url, str(root)) == []
    assert payout_exports.reconcile_ledger(url) == []


def test_rerun_writes_nothing(golden_run, golden_dir):
    url, root, _ = golden_run
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*") if p.is_file()}

    class Counting(payout_exports.LocalStore):
        writes = 0

        def create(self, name, data):
            Counting.writes += 1
            return super().create(name, data)

    for day in (dt.date(2025, 2, 1), dt.date(2025, 2, 15), dt.date(2025, 3, 1)):
        set_events(url, events_as_of(golden_dir, day))
        assert (
            payout_exports.publish_due(url, day, Counting(root), code_version="other", log=lambda _: None)
            == []
        )
    assert Counting.writes == 0
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*") if p.is_file()} == before


def test_local_and_s3_are_byte_identical(golden_run, s3_bucket):
    url, root, _ = golden_run
    uri = f"s3://{s3_bucket}/exports/payouts"
    for period in ("2025-01", "2025-02"):
        assert payout_exports.publish_batch(url, uri, f"batch-{period}", log=lambda _: None) == 5
        store = payout_exports.open_store(uri)
        for f in sorted((root / f"period={period}").iterdir()):
            assert store.read(f"period={period}/{f.name}") == f.read_bytes(), f.name
    assert payout_exports.verify_published(url, uri) == []
    # publishing again writes nothing (the objects exist with identical bytes)
    assert payout_exports.publish_batch(url, uri, "batch-2025-01", log=lambda _: None) == 0


def test_show_batch(golden_run, tmp_path):
    url, published, _ = golden_run
    root = tmp_path / "copy"
    shutil.copytree(published, root)
    text, ok = payout_exports.show_batch(url, str(root), "2025-02")
    assert ok, text
    assert "4 partners, 15 lines, 43180.71 USD" in text
    assert "EUR: 6887.60 to 1 partners" in text
    assert "held for review: 8 lines" in text
    assert "1 partners, balance 50.00" in text
    (root / "period=2025-02" / "deferred.csv").write_text("tampered\n")
    text, ok = payout_exports.show_batch(url, str(root), "2025-02")
    assert not ok
    assert "deferred.csv does not match its manifest checksum" in text
    text, ok = payout_exports.show_batch(url, str(root), "2024-12")
    assert not ok and "no payout batch" in text
