"""Payout batches on small synthetic inputs (SPEC sections 8 and 9): periods, clawbacks, holds, approvals,
minimum payout, currency conversion, immutability, and crash recovery."""

from __future__ import annotations

import datetime as dt
import json

import psycopg
import pytest
from test_payout_helpers import event, read_published, set_events, set_partners, set_rates, setup_inputs

import payout_exports

PARTNERS = [
    ("P1", "Partner One", "active", True, "USD"),
    ("P2", "Partner Two", "active", True, "EUR"),
    ("P3", "Partner Three", "suspended", False, "USD"),
]
D = dt.date


@pytest.fixture
def wh(warehouse_url):
    setup_inputs(warehouse_url)
    set_partners(warehouse_url, PARTNERS)
    set_rates(
        warehouse_url,
        [("2025-01-30", "EUR", "0.9"), ("2025-02-27", "EUR", "0.5"), ("2025-03-01", "EUR", "9")],
    )
    return warehouse_url


def run(url, day, root, **kw):
    return [
        b.batch_id
        for b in payout_exports.publish_due(url, day, str(root), code_version="t", log=lambda _: None, **kw)
    ]


def lines(root, period, name="payout_lines.csv"):
    return {r["event_id"]: r for r in read_published(root, period, name)}


def control(url, sql, *params):
    with psycopg.connect(url) as conn:
        conn.execute(sql, params)


def test_nothing_while_there_is_no_event(wh, tmp_path):
    assert run(wh, D(2025, 3, 1), tmp_path) == []
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_periods_start_at_earliest_payable_and_empty_batches_are_published(wh, tmp_path):
    set_events(
        wh, [event("referral_bonus:R-1", "P1", "150.00", "2025-03-10T00:00:00Z", "2025-02-10T00:00:00Z")]
    )
    assert run(wh, D(2025, 3, 31), tmp_path) == []
    assert run(wh, D(2025, 6, 1), tmp_path) == ["batch-2025-03", "batch-2025-04", "batch-2025-05"]
    assert (tmp_path / "period=2025-04" / "payout_lines.csv").read_bytes() == (
        b"batch_id,period,event_id,event_type,partner_id,deal_id,referral_id,earned_at,payable_at,entitlement,"
        b"previously_paid,amount\n"
    )
    manifest = json.loads((tmp_path / "period=2025-05" / "manifest.json").read_text())
    assert manifest["control_totals"] == {
        "amount_by_currency": {},
        "line_count": 0,
        "partner_count": 0,
        "program_amount": "0.00",
    }
    assert manifest["cutoff"] == "2025-05-31T23:59:59.999999Z"
    assert [f["rows"] for f in manifest["files"]] == [0, 0, 0, 0]
    assert lines(tmp_path, "2025-03")["referral_bonus:R-1"]["amount"] == "150.00"
    # never a period before the last published one: a late event payable in January is paid in June's batch
    r1 = event("referral_bonus:R-1", "P1", "150.00", "2025-03-10T00:00:00Z", "2025-02-10T00:00:00Z")
    set_events(wh, [r1, event("referral_bonus:R-2", "P1", "120.00", "2025-01-15T00:00:00Z")])
    assert run(wh, D(2025, 6, 30), tmp_path) == []
    assert run(wh, D(2025, 7, 1), tmp_path) == ["batch-2025-06"]
    got = lines(tmp_path, "2025-06")
    assert {k: (v["entitlement"], v["previously_paid"], v["amount"]) for k, v in got.items()} == {
        "referral_bonus:R-2": ("120.00", "0.00", "120.00")
    }


def test_late_clawback_gives_a_negative_line_that_carries_forward(wh, tmp_path):
    c1 = event("commission:D-1:P1", "P1", "1000.00", "2025-01-10T08:00:00Z", "2024-12-11T08:00:00Z")
    set_events(wh, [c1])
    assert run(wh, D(2025, 2, 1), tmp_path) == ["batch-2025-01"]
    assert lines(tmp_path, "2025-01")["commission:D-1:P1"]["amount"] == "1000.00"
    # a late reversal lowers the commission; a new bonus in February does not cover it
    set_events(
        wh, [{**c1, "amount": "600.00"}, event("referral_bonus:R-2", "P1", "200.00", "2025-02-05T00:00:00Z")]
    )
    assert run(wh, D(2025, 3, 1), tmp_path) == ["batch-2025-02"]
    assert read_published(tmp_path, "2025-02", "payout_lines.csv") == []
    assert read_published(tmp_path, "2025-02", "deferred.csv") == [
        {
            "batch_id": "batch-2025-02",
            "period": "2025-02",
            "partner_id": "P1",
            "line_count": "2",
            "balance": "-200.00",
        }
    ]
    # March: a new commission covers the negative balance; all three lines are paid together
    set_events(
        wh,
        [
            {**c1, "amount": "600.00"},
            event("referral_bonus:R-2", "P1", "200.00", "2025-02-05T00:00:00Z"),
            event("qualified_bonus:D-3:P1", "P1", "500.00", "2025-03-05T00:00:00Z"),
        ],
    )
    assert run(wh, D(2025, 4, 1), tmp_path) == ["batch-2025-03"]
    got = lines(tmp_path, "2025-03")
    assert {k: (v["entitlement"], v["previously_paid"], v["amount"]) for k, v in got.items()} == {
        "commission:D-1:P1": ("600.00", "1000.00", "-400.00"),
        "qualified_bonus:D-3:P1": ("500.00", "0.00", "500.00"),
        "referral_bonus:R-2": ("200.00", "0.00", "200.00"),
    }
    assert got["commission:D-1:P1"]["earned_at"] == "2024-12-11T08:00:00Z"
    assert [
        (r["partner_id"], r["line_count"], r["amount"])
        for r in read_published(tmp_path, "2025-03", "payouts.csv")
    ] == [("P1", "3", "300.00")]
    # April: the deal is deleted (the event is gone) and the partner is suspended; negative lines are never held
    set_partners(wh, [("P1", "Partner One", "suspended", True, "USD")])
    set_events(wh, [event("referral_bonus:R-2", "P1", "200.00", "2025-02-05T00:00:00Z"),
                    event("qualified_bonus:D-3:P1", "P1", "500.00", "2025-03-05T00:00:00Z")])  # fmt: skip
    assert run(wh, D(2025, 5, 1), tmp_path) == ["batch-2025-04"]
    assert read_published(tmp_path, "2025-04", "review_queue.csv") == []
    assert read_published(tmp_path, "2025-04", "deferred.csv")[0]["balance"] == "-600.00"
    assert payout_exports.reconcile_ledger(wh) == []
    assert payout_exports.verify_published(wh, str(tmp_path)) == []


def test_dispute_holds_and_resolve_releases(wh, tmp_path):
    set_events(
        wh,
        [
            event("commission:D-7:P1", "P1", "300.00", "2025-01-20T00:00:00Z"),
            event("qualified_bonus:D-7:P1", "P1", "100.00", "2025-01-05T00:00:00Z"),
            event("referral_bonus:R-7", "P1", "150.00", "2025-01-06T00:00:00Z"),
            event("referral_bonus:R-8", "P1", "50.00", "2025-01-06T00:00:00Z"),
        ],
    )
    add = "insert into controls.disputes (subject_type, subject_id, action, created_by, reason) values (%s, %s, %s, 'pm', 'x')"
    control(wh, add, "deal", "D-7", "open")
    control(wh, add, "referral", "R-8", "open")
    control(wh, add, "referral", "R-9", "open")
    assert run(wh, D(2025, 2, 1), tmp_path) == ["batch-2025-01"]
    assert set(lines(tmp_path, "2025-01")) == {"referral_bonus:R-7"}
    held = lines(tmp_path, "2025-01", "review_queue.csv")
    assert {k: v["reasons"] for k, v in held.items()} == {
        "commission:D-7:P1": "disputed",
        "qualified_bonus:D-7:P1": "disputed",
        "referral_bonus:R-8": "disputed",
    }
    control(wh, add, "deal", "D-7", "resolve")
    assert run(wh, D(2025, 3, 1), tmp_path) == ["batch-2025-02"]
    assert set(lines(tmp_path, "2025-02")) == {"commission:D-7:P1", "qualified_bonus:D-7:P1"}
    assert set(lines(tmp_path, "2025-02", "review_queue.csv")) == {"referral_bonus:R-8"}


def test_reasons_in_order_and_approval_releases(wh, tmp_path):
    set_events(wh, [event("commission:D-5:P3", "P3", "250.00", "2025-01-20T00:00:00Z")])
    add = "insert into controls.disputes (subject_type, subject_id, action, created_by, reason) values (%s, %s, %s, 'pm', 'x')"
    control(wh, add, "deal", "D-5", "open")
    assert run(wh, D(2025, 2, 1), tmp_path) == ["batch-2025-01"]
    row = lines(tmp_path, "2025-01", "review_queue.csv")["commission:D-5:P3"]
    assert row["reasons"] == "partner_inactive;missing_tax_form;disputed"
    assert row["amount"] == "250.00"
    control(
        wh,
        "insert into controls.approvals (event_id, created_by, reason) values (%s, 'fin', 'ok')",
        "commission:D-5:P3",
    )
    assert run(wh, D(2025, 3, 1), tmp_path) == ["batch-2025-02"]
    assert read_published(tmp_path, "2025-02", "review_queue.csv") == []
    assert [(r["partner_id"], r["amount"]) for r in read_published(tmp_path, "2025-02", "payouts.csv")] == [
        ("P3", "250.00")
    ]


def test_minimum_defers_then_pays_the_balance_in_the_partner_currency(wh, tmp_path):
    set_events(wh, [event("referral_bonus:R-1", "P2", "60.05", "2025-01-10T00:00:00Z")])
    assert run(wh, D(2025, 2, 1), tmp_path) == ["batch-2025-01"]
    assert read_published(tmp_path, "2025-01", "payouts.csv") == []
    assert read_published(tmp_path, "2025-01", "deferred.csv") == [
        {
            "batch_id": "batch-2025-01",
            "period": "2025-01",
            "partner_id": "P2",
            "line_count": "1",
            "balance": "60.05",
        }
    ]
    set_events(
        wh,
        [
            event("referral_bonus:R-1", "P2", "60.05", "2025-01-10T00:00:00Z"),
            event("referral_bonus:R-2", "P2", "50.00", "2025-02-10T00:00:00Z"),
        ],
    )
    assert run(wh, D(2025, 3, 1), tmp_path) == ["batch-2025-02"]
    # 110.05 x 0.5 (the rate of 2025-02-27, the latest on or before the cutoff) = 55.025 -> 55.03
    assert read_published(tmp_path, "2025-02", "payouts.csv") == [
        {"batch_id": "batch-2025-02", "period": "2025-02", "partner_id": "P2", "partner_name": "Partner Two",
         "line_count": "2", "amount": "110.05", "payout_currency": "EUR", "fx_rate": "0.5", "payout_amount": "55.03"}
    ]  # fmt: skip
    manifest = json.loads((tmp_path / "period=2025-02" / "manifest.json").read_text())
    assert manifest["control_totals"]["amount_by_currency"] == {"EUR": "55.03"}
    assert manifest["control_totals"]["program_amount"] == "110.05"


def test_missing_fx_rate_stops_publishing(wh, tmp_path):
    set_rates(wh, [("2025-02-01", "EUR", "0.9")])
    set_events(wh, [event("referral_bonus:R-1", "P2", "160.00", "2025-01-10T00:00:00Z")])
    with pytest.raises(payout_exports.PayoutError, match="no fx rate for EUR on or before 2025-01-31"):
        run(wh, D(2025, 2, 1), tmp_path)
    with psycopg.connect(wh) as conn:
        assert conn.execute("select count(*) from payouts.batches").fetchone()[0] == 0


def test_timestamps_and_exact_bytes(wh, tmp_path):
    set_events(
        wh, [event("referral_bonus:R-1", "P1", "100", "2025-01-10T10:00:00.123456Z", "2025-01-10T10:00:00Z")]
    )
    assert run(wh, D(2025, 2, 1), tmp_path) == ["batch-2025-01"]
    assert (tmp_path / "period=2025-01" / "payout_lines.csv").read_bytes().split(b"\n")[1] == (
        b"batch-2025-01,2025-01,referral_bonus:R-1,referral_bonus,P1,,R-1,2025-01-10T10:00:00Z,"
        b"2025-01-10T10:00:00.123456Z,100.00,0.00,100.00"
    )
    assert (tmp_path / "period=2025-01" / "payouts.csv").read_bytes() == (
        b"batch_id,period,partner_id,partner_name,line_count,amount,payout_currency,fx_rate,payout_amount\n"
        b"batch-2025-01,2025-01,P1,Partner One,1,100.00,USD,1,100.00\n"
    )


def test_ledger_is_append_only(wh, tmp_path):
    set_events(wh, [event("referral_bonus:R-1", "P1", "100", "2025-01-10T00:00:00Z")])
    run(wh, D(2025, 2, 1), tmp_path)
    for statement in (
        "update payouts.ledger_lines set amount = 1",
        "delete from payouts.ledger_lines",
        "delete from payouts.partner_payouts",
        "update payouts.batches set program_amount = 1",
        "update payouts.batches set status = 'recorded'",
        "delete from payouts.batches",
    ):
        with pytest.raises(psycopg.errors.RaiseException), psycopg.connect(wh) as conn:
            conn.execute(statement)


class FailingStore(payout_exports.S3Store):
    """The real S3 store that stops (as if the process died) after a number of files."""

    def __init__(self, uri, fail_after):
        super().__init__(uri)
        self.left = fail_after

    def create(self, name, data):
        if self.left == 0:
            raise ConnectionError("simulated crash while uploading")
        self.left -= 1
        return super().create(name, data)


def test_crash_after_ledger_commit_then_rerun_gives_identical_files(wh, tmp_path, s3_bucket):
    uri = f"s3://{s3_bucket}/exports"
    set_events(
        wh,
        [
            event("referral_bonus:R-1", "P1", "150.00", "2025-01-10T00:00:00Z"),
            event("referral_bonus:R-2", "P3", "150.00", "2025-01-10T00:00:00Z"),
            event("referral_bonus:R-3", "P2", "50.00", "2025-01-10T00:00:00Z"),
        ],
    )
    with pytest.raises(ConnectionError):
        payout_exports.publish_due(
            wh, D(2025, 2, 1), FailingStore(uri, 2), code_version="t", log=lambda _: None
        )
    store = payout_exports.open_store(uri)
    assert store.read("period=2025-01/payouts.csv") is not None
    assert store.read("period=2025-01/review_queue.csv") is None
    assert store.read("period=2025-01/manifest.json") is None
    problems = payout_exports.reconcile_batch(wh, uri, "batch-2025-01")
    assert problems and "not published" in problems[0]
    text, ok = payout_exports.show_batch(wh, uri, "2025-01")
    assert not ok and "NOT PUBLISHED" in text
    # the inputs change before the rerun: the recorded batch is not recomputed
    set_events(wh, [event("referral_bonus:R-1", "P1", "999.00", "2025-01-10T00:00:00Z")])
    results = payout_exports.publish_due(wh, D(2025, 2, 1), uri, code_version="other", log=lambda _: None)
    assert [(r.batch_id, r.status) for r in results] == [("batch-2025-01", "published")]
    payout_exports.publish_batch(wh, str(tmp_path), "batch-2025-01", log=lambda _: None)
    for f in sorted((tmp_path / "period=2025-01").iterdir()):
        assert store.read(f"period=2025-01/{f.name}") == f.read_bytes(), f.name
    assert lines(tmp_path, "2025-01")["referral_bonus:R-1"]["amount"] == "150.00"
    manifest = json.loads(store.read("period=2025-01/manifest.json"))
    assert manifest["code_version"] == "t"
    assert [(f["name"], f["rows"]) for f in manifest["files"]] == [
        ("payouts.csv", 1), ("payout_lines.csv", 1), ("review_queue.csv", 1), ("deferred.csv", 1)
    ]  # fmt: skip
    assert payout_exports.verify_published(wh, uri) == []
    assert payout_exports.publish_due(wh, D(2025, 2, 1), uri, code_version="t", log=lambda _: None) == []


def test_upload_to_a_missing_bucket_fails_and_the_rerun_finishes(wh, tmp_path, s3_bucket):
    set_events(wh, [event("referral_bonus:R-1", "P1", "150.00", "2025-01-10T00:00:00Z")])
    with pytest.raises(Exception, match="NoSuchBucket|does not exist"):
        payout_exports.publish_due(
            wh, D(2025, 2, 1), "s3://no-such-bucket-x/e", code_version="t", log=lambda _: None
        )
    assert run(wh, D(2025, 2, 1), tmp_path) == ["batch-2025-01"]
    assert payout_exports.verify_published(wh, str(tmp_path)) == []


def test_an_existing_different_file_is_never_overwritten(wh, tmp_path):
    set_events(wh, [event("referral_bonus:R-1", "P1", "150.00", "2025-01-10T00:00:00Z")])
    (tmp_path / "period=2025-01").mkdir(parents=True)
    (tmp_path / "period=2025-01" / "payout_lines.csv").write_bytes(b"other\n")
    with pytest.raises(payout_exports.PublishConflict):
        run(wh, D(2025, 2, 1), tmp_path)
    assert (tmp_path / "period=2025-01" / "payout_lines.csv").read_bytes() == b"other\n"
    assert not (tmp_path / "period=2025-01" / "manifest.json").exists()
