"""Partner statements (`referral-pipeline statements`) on the golden example's published batches (the session's
golden nightly run, not run again): one statement per partner of each batch, totals equal to the published
batch files and to the golden expected files to the cent, a manifest with checksums, reruns that write nothing,
quarter statements that sum their months, S3 publishing, and the HTML page in a real headless browser.

The statements are written to a fresh export folder (and bucket) of this module, into which the batch files
published by the golden run are copied byte for byte: statements are published next to their batch."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import boto3
import psycopg
import pytest
from browser import browser_page

from payout_exports.render import sha256
from payout_exports.statements import publish_statements
from payout_exports.store import open_store
from referral_pipeline.cli import main

from golden import PERIODS, read_csv, scoped_env

BATCH_FILES = ("payouts.csv", "payout_lines.csv", "review_queue.csv", "deferred.csv", "manifest.json")


def parse(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def by_partner(rows: list[dict[str, str]], column: str = "amount") -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for r in rows:
        totals[r["partner_id"]] += Decimal(r[column])
    return dict(totals)


def cli(env: dict, *argv: str) -> int:
    with scoped_env(env):
        return main(list(argv))


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


@pytest.fixture(scope="module")
def exports(golden_nightly, tmp_path_factory) -> Path:
    """A fresh export folder holding copies of the golden run's published batches."""
    root = tmp_path_factory.mktemp("statement-exports")
    for period in PERIODS:
        shutil.copytree(golden_nightly["exports"] / f"period={period}", root / f"period={period}")
    return root


@pytest.fixture(scope="module")
def env(golden_nightly, exports) -> dict:
    return {"REFERRAL_WAREHOUSE_URL": golden_nightly["url"], "REFERRAL_EXPORT_URI": str(exports)}


@pytest.fixture(scope="module")
def published(env, exports) -> dict[str, list[str]]:
    """The statements of both periods and of 2025-Q1, published once through the command line; its output."""
    lines = {}
    for what in [("--period", p) for p in PERIODS] + [("--quarter", "2025-Q1")]:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert cli(env, "statements", *what) == 0
        lines[what[1]] = buf.getvalue().splitlines()
    return lines


def folder(exports: Path, period: str) -> Path:
    return exports / f"period={period}" / "statements"


def statement(exports: Path, period: str, partner: str) -> list[dict[str, str]]:
    return parse((folder(exports, period) / f"{partner}.csv").read_bytes())


def rows_of(rows: list[dict[str, str]], section: str, period: str | None = None) -> list[dict[str, str]]:
    return [r for r in rows if r["section"] == section and (period is None or r["period"] == period)]


def expected(golden_dir: Path, name: str, period: str) -> list[dict[str, str]]:
    return [r for r in read_csv(golden_dir / name) if r["period"] == period]


@pytest.mark.parametrize("period", PERIODS)
def test_a_statement_for_every_partner_of_the_batch(published, exports, golden_dir, period):
    batch = exports / f"period={period}"
    partners = {
        r["partner_id"]
        for name in ("payouts.csv", "review_queue.csv", "deferred.csv")
        for r in parse((batch / name).read_bytes())
    }
    golden = {
        r["partner_id"]
        for name in ("expected_payouts.csv", "expected_review_queue.csv", "expected_deferred.csv")
        for r in expected(golden_dir, name, period)
    }
    assert partners == golden and len(partners) == 8
    written = sorted(p.name for p in folder(exports, period).iterdir())
    assert written == sorted(
        [f"{p}.csv" for p in partners] + [f"{p}.html" for p in partners] + ["manifest.json"]
    )
    assert published[period] == [
        f"statements for period {period} (batch-{period}): 8 partners, 17 files written to "
        f"{folder(exports, period)}/"
    ]


@pytest.mark.parametrize("period", PERIODS)
def test_statement_totals_equal_the_published_batch_to_the_cent(published, exports, golden_dir, period):
    batch = exports / f"period={period}"
    payouts = {r["partner_id"]: r for r in parse((batch / "payouts.csv").read_bytes())}
    lines = parse((batch / "payout_lines.csv").read_bytes())
    review = parse((batch / "review_queue.csv").read_bytes())
    deferred = {r["partner_id"]: r for r in parse((batch / "deferred.csv").read_bytes())}
    golden_payouts = {r["partner_id"]: r for r in expected(golden_dir, "expected_payouts.csv", period)}
    golden_review = by_partner(expected(golden_dir, "expected_review_queue.csv", period))
    golden_deferred = {r["partner_id"]: r for r in expected(golden_dir, "expected_deferred.csv", period)}
    assert {p: Decimal(r["amount"]) for p, r in payouts.items()} == {
        p: Decimal(r["amount"]) for p, r in golden_payouts.items()
    }
    for partner in payouts.keys() | {r["partner_id"] for r in review} | deferred.keys():
        rows = statement(exports, period, partner)
        paid, held = rows_of(rows, "paid_line"), rows_of(rows, "held_line")
        # Every line of the batch, and only those, with the ledger's amounts.
        assert [(r["event_id"], r["entitlement"], r["previously_paid"], r["amount"]) for r in paid] == [
            (r["event_id"], r["entitlement"], r["previously_paid"], r["amount"])
            for r in lines
            if r["partner_id"] == partner
        ]
        assert [(r["event_id"], r["amount"], r["reasons"]) for r in held] == [
            (r["event_id"], r["amount"], r["reasons"]) for r in review if r["partner_id"] == partner
        ]
        paid_sum = sum((Decimal(r["amount"]) for r in paid), Decimal(0))
        held_sum = sum((Decimal(r["amount"]) for r in held), Decimal(0))
        [paid_total] = rows_of(rows, "paid_total")
        [held_total] = rows_of(rows, "held_total")
        assert Decimal(paid_total["amount"]) == paid_sum
        assert Decimal(held_total["amount"]) == held_sum == golden_review.get(partner, Decimal(0))
        payout = rows_of(rows, "payout")
        if partner in golden_payouts:
            g = golden_payouts[partner]
            assert paid_sum == Decimal(g["amount"]) == Decimal(payouts[partner]["amount"])
            assert len(paid) == int(g["line_count"])
            [p] = payout
            assert (p["currency"], Decimal(p["fx_rate"]), p["payout_amount"]) == (
                g["payout_currency"],
                Decimal(g["fx_rate"]),
                g["payout_amount"],
            )
            if g["payout_currency"] != "USD":
                assert p["fx_rate_date"]  # the date of the rate used
        else:
            assert paid == [] and payout == [] and paid_sum == 0
        deferred_rows = rows_of(rows, "deferred")
        if partner in golden_deferred:
            [d] = deferred_rows
            assert d["amount"] == golden_deferred[partner]["balance"] == deferred[partner]["balance"]
            assert "below the minimum payout" in d["note"]
        else:
            assert deferred_rows == []
        [closing] = rows_of(rows, "closing_balance")
        deferred_balance = Decimal(golden_deferred[partner]["balance"]) if partner in golden_deferred else 0
        assert Decimal(closing["amount"]) == held_sum + deferred_balance
        for r in held:
            assert r["released_by"]


def test_lines_are_explained(published, exports, golden_dir):
    """Every line of an event names its tier and rules version, a deal line its deal, company, touchpoints and
    payout credit, a commission its rate."""
    events = {r["event_id"]: r for r in read_csv(golden_dir / "expected_reward_events.csv")}
    credits = {
        (r["deal_id"], r["partner_id"]): Decimal(r["credit"])
        for r in read_csv(golden_dir / "expected_attribution.csv")
        if r["model"] == "position_based"  # the payout model of the golden rules; no override
    }
    seen = companies = 0
    for period in PERIODS:
        for path in folder(exports, period).glob("*.csv"):
            for line in rows_of(parse(path.read_bytes()), "paid_line") + rows_of(
                parse(path.read_bytes()), "held_line"
            ):
                event = events.get(line["event_id"])
                if event is None:  # the deal deleted in February: paid in January, clawed back in February
                    assert line["event_id"] == "qualified_bonus:D-00020:PTR-0001" and line["note"]
                    assert (period, line["entitlement"]) in (("2025-01", "250.00"), ("2025-02", "0.00"))
                    continue
                seen += 1
                assert (line["tier"], line["rules_version"]) == (event["tier"], event["rules_version"])
                assert line["touchpoints"]
                companies += bool(line["company"])  # a free-mail lead's deal has no company
                if event["deal_id"]:
                    assert line["deal_id"] == event["deal_id"] and line["deal_name"]
                    assert line["payout_model"] == "position_based"
                    assert abs(
                        Decimal(line["credit"]) - credits[(line["deal_id"], event["partner_id"])]
                    ) < Decimal("1e-9")
                else:
                    assert line["referral_id"] == event["referral_id"] and line["touchpoints"].startswith(
                        "referral "
                    )
                assert bool(line["commission_rate"]) == (event["event_type"] == "commission")
    assert seen > 40 and companies > seen - 5
    # The deal deleted in February: a clawback line of an event the data no longer produces.
    clawbacks = [
        r for p in ("PTR-0001", "PTR-0002", "PTR-0005", "PTR-0006") for r in rows_of(statement(exports, "2025-02", p), "paid_line")
        if Decimal(r["amount"]) == Decimal("-250.00")
    ]  # fmt: skip
    assert len(clawbacks) == 1 and clawbacks[0]["entitlement"] == "0.00" and clawbacks[0]["note"]
    # The opening balance of February is what January left unpaid (PTR-0004's held lines).
    [opening] = rows_of(statement(exports, "2025-02", "PTR-0004"), "opening_balance")
    [closing] = rows_of(statement(exports, "2025-01", "PTR-0004"), "closing_balance")
    assert opening["amount"] == closing["amount"] != "0.00"


@pytest.mark.parametrize("period", PERIODS)
def test_manifest_lists_every_file_with_its_checksum(published, exports, period):
    root = folder(exports, period)
    manifest = json.loads((root / "manifest.json").read_bytes())
    assert manifest["batches"] == [
        {
            "batch_id": f"batch-{period}",
            "period": period,
            "manifest_sha256": sha256((exports / f"period={period}" / "manifest.json").read_bytes()),
        }
    ]
    assert {f["name"] for f in manifest["files"]} == {p.name for p in root.iterdir()} - {"manifest.json"}
    for f in manifest["files"]:
        data = (root / f["name"]).read_bytes()
        assert (f["bytes"], f["sha256"]) == (len(data), sha256(data))
    payouts = parse((exports / f"period={period}" / "payouts.csv").read_bytes())
    assert Decimal(manifest["control_totals"]["paid_amount"]) == sum(Decimal(r["amount"]) for r in payouts)


def test_rerun_writes_nothing(published, env, exports, capsys):
    before = snapshot(exports)
    for what in [("--period", p) for p in PERIODS] + [("--quarter", "2025-Q1")]:
        assert cli(env, "statements", *what) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and all(line.endswith("nothing new written") for line in out)
    assert snapshot(exports) == before


def test_quarter_sums_its_months(published, exports, golden_dir):
    root = exports / "quarter=2025-Q1" / "statements" / "through=2025-02"
    golden = read_csv(golden_dir / "expected_payouts.csv")
    partners = {r["partner_id"] for r in golden}
    assert published["2025-Q1"][0].startswith("statements for quarter 2025-Q1 (through 2025-02)")
    for partner in partners:
        rows = parse((root / f"{partner}.csv").read_bytes())
        mine = [r for r in golden if r["partner_id"] == partner]
        [paid_total] = rows_of(rows, "paid_total", "2025-Q1")
        assert Decimal(paid_total["amount"]) == sum(Decimal(r["amount"]) for r in mine)
        payouts = {r["currency"]: Decimal(r["payout_amount"]) for r in rows_of(rows, "payout", "2025-Q1")}
        want: dict[str, Decimal] = defaultdict(Decimal)
        for r in mine:
            want[r["payout_currency"]] += Decimal(r["payout_amount"])
        assert payouts == want
        # and each month's lines are there, as in the monthly statements
        for period in PERIODS:
            monthly = folder(exports, period) / f"{partner}.csv"
            if monthly.exists():
                assert rows_of(rows, "paid_line", period) == rows_of(parse(monthly.read_bytes()), "paid_line")


def test_html_statement_in_a_browser(published, exports, golden_dir):
    g = {r["partner_id"]: r for r in expected(golden_dir, "expected_payouts.csv", "2025-01")}["PTR-0002"]
    with browser_page(folder(exports, "2025-01") / "PTR-0002.html") as page:
        assert page.errors == []
        paid = page.locator('[data-scope="2025-01"][data-total="paid_total"]').inner_text()
        payout = page.locator(
            f'[data-scope="2025-01"][data-total="payout-{g["payout_currency"]}"]'
        ).inner_text()
        assert paid == f"{g['amount']} USD"
        assert payout == f"{g['payout_amount']} {g['payout_currency']}"
        assert page.locator("tr[data-event]").count() == int(g["line_count"])
        assert page.get_by_text("Peaknova Partners 2").count() >= 1
    held = sum(
        (Decimal(r["amount"]) for r in expected(golden_dir, "expected_review_queue.csv", "2025-01")),
        Decimal(0),
    )
    with browser_page(folder(exports, "2025-01") / "PTR-0004.html") as page:
        assert page.errors == []
        text = page.locator('[data-scope="2025-01"][data-total="held_total"]').inner_text()
        assert text == f"{held} USD"
        assert page.get_by_text("missing_tax_form").count() == 3


def test_refusals_are_one_line(env, tmp_path, capsys):
    assert cli(env, "statements", "--period", "2025-03") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: no payout batch is recorded for period 2025-03: statements need a published batch"]
    assert cli(env, "statements", "--quarter", "2024-Q4") == 1
    assert capsys.readouterr().err.strip() == "error: no payout batch of quarter 2024-Q4 is published yet"
    # a store without the batch's files: nothing is written there
    empty = {**env, "REFERRAL_EXPORT_URI": str(tmp_path)}
    assert cli(empty, "statements", "--period", "2025-01") == 1
    assert "has no manifest.json at" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(SystemExit) as usage:
        cli(env, "statements", "--period", "2025-1")
    assert usage.value.code == 2


def test_s3_publishing(published, golden_nightly, exports, s3_bucket):
    """The same statements on S3 (conditional writes), byte-identical to the local ones; a rerun writes nothing."""
    uri = f"s3://{s3_bucket}/exports"
    store = open_store(uri)
    for name in BATCH_FILES:
        store.create(f"period=2025-01/{name}", (exports / "period=2025-01" / name).read_bytes())
    with psycopg.connect(golden_nightly["url"]) as conn:
        first = publish_statements(conn, uri, period="2025-01", log=lambda _: None)
        client = boto3.client("s3")
        listing = [
            (o["Key"], o["ETag"], o["LastModified"])
            for o in client.list_objects_v2(Bucket=s3_bucket, Prefix="exports/period=2025-01/statements/")[
                "Contents"
            ]
        ]
        again = publish_statements(conn, uri, period="2025-01", log=lambda _: None)
    assert (first.written, again.written, first.partner_count) == (17, 0, 8)
    assert listing == [
        (o["Key"], o["ETag"], o["LastModified"])
        for o in client.list_objects_v2(Bucket=s3_bucket, Prefix="exports/period=2025-01/statements/")[
            "Contents"
        ]
    ]
    for path in folder(exports, "2025-01").iterdir():
        assert store.read(f"period=2025-01/statements/{path.name}") == path.read_bytes()
