"""The golden example end to end, through the real Dagster job (loads, rules, dbt build, payouts): every
mart and published batch must equal the expected outputs exactly (to the cent, credits to 1e-9).

The nightly job runs once per test session (fixture `golden_nightly`), as the two backfill runs of
golden.RANGES."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from golden import PERIODS, assert_same_rows, query_rows, read_csv, scoped_env


@pytest.fixture(scope="module")
def golden_run(golden_nightly):
    """The session's golden run, with its settings in the environment (the CLI tests below read them)."""
    with scoped_env(golden_nightly["env"]):
        yield golden_nightly


def test_rejected_rows(golden_run):
    expected = {
        (r["file"], int(r["line"])) for r in read_csv(golden_run["golden"] / "expected_rejected_rows.csv")
    }
    with psycopg.connect(golden_run["url"]) as conn:
        got = set(conn.execute("select _source_file, _line_number from raw.rejected_rows").fetchall())
    assert got == expected


def test_touchpoints(golden_run):
    cols = ("touch_type", "partner_id", "account_key", "occurred_at", "exclusion_reason")
    with psycopg.connect(golden_run["url"]) as conn:
        got = query_rows(conn, f"select touch_id, {', '.join(cols)} from marts.fct_touchpoints")
    expected = read_csv(golden_run["golden"] / "expected_touchpoints.csv")
    assert_same_rows(got, expected, ("touch_id",), cols, what="fct_touchpoints")


def test_attribution(golden_run):
    with psycopg.connect(golden_run["url"]) as conn:
        got = query_rows(
            conn, "select deal_id, partner_id, model, credit, touch_count, is_won from marts.fct_attribution"
        )
    expected = read_csv(golden_run["golden"] / "expected_attribution.csv")
    assert_same_rows(
        got,
        expected,
        ("deal_id", "partner_id", "model"),
        ("credit", "touch_count", "is_won"),
        what="fct_attribution",
        decimals={"credit": Decimal("1e-9")},
    )


def test_reward_events(golden_run):
    cols = (
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
    with psycopg.connect(golden_run["url"]) as conn:
        got = query_rows(conn, f"select event_id, {', '.join(cols)} from marts.fct_reward_events")
    expected = read_csv(golden_run["golden"] / "expected_reward_events.csv")
    assert_same_rows(got, expected, ("event_id",), cols, what="fct_reward_events")


def _published(exports: Path, name: str) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for period in PERIODS:
        path = exports / f"period={period}" / name
        assert path.exists(), f"{path} was not published"
        with open(path, newline="", encoding="utf-8") as f:
            rows += list(csv.DictReader(f))
    return rows


@pytest.mark.parametrize(
    "name,key",
    [
        ("payouts.csv", ("period", "partner_id")),
        ("payout_lines.csv", ("period", "event_id")),
        ("review_queue.csv", ("period", "event_id")),
        ("deferred.csv", ("period", "partner_id")),
    ],
)
def test_published_batches(golden_run, name, key):
    expected = read_csv(golden_run["golden"] / f"expected_{name}")
    got = _published(golden_run["exports"], name)
    with open(golden_run["golden"] / f"expected_{name}", newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))
    for period in PERIODS:
        with open(golden_run["exports"] / f"period={period}" / name, newline="", encoding="utf-8") as f:
            assert next(csv.reader(f)) == header, f"{name} of {period}: columns differ from SPEC section 9"
    columns = tuple(c for c in header if c != "batch_id")
    assert_same_rows(got, expected, key, columns, what=name)


def test_batch_control_totals(golden_run):
    import json

    for row in read_csv(golden_run["golden"] / "expected_batches.csv"):
        manifest = json.loads(
            (golden_run["exports"] / f"period={row['period']}" / "manifest.json").read_text()
        )
        totals = manifest["control_totals"]
        assert manifest["period"] == row["period"]
        assert manifest["cutoff"] == row["cutoff"]
        assert totals["partner_count"] == int(row["partner_count"])
        assert totals["line_count"] == int(row["line_count"])
        assert Decimal(str(totals["program_amount"])) == Decimal(row["total_amount"])


def test_payouts_show_summarises_and_verifies_a_batch(golden_run, capsys):
    from referral_pipeline.cli import main

    assert main(["payouts", "show", "--period", "2025-01"]) == 0
    out = capsys.readouterr().out
    assert "2025-01" in out and "4133.34" in out


# Control commands against the golden warehouse (they run last: they append control rows).


def test_approve_refuses_an_unknown_event_and_audits_a_known_one(golden_run, capsys):
    from referral_pipeline.cli import main

    assert main(["approve", "commission:D-99999:PTR-0001", "--by", "ann", "--reason", "checked"]) == 1
    assert "unknown event" in capsys.readouterr().err
    assert main(["approve", "referral_bonus:REF-00015", "--by", "ann", "--reason", "tax form received"]) == 0
    with psycopg.connect(golden_run["url"]) as conn:
        rows = conn.execute(
            "select event_id, created_by, reason, created_at from controls.approvals"
        ).fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [("referral_bonus:REF-00015", "ann", "tax form received")]
    assert rows[0][3] is not None


def test_dispute_open_and_resolve_are_audited_and_checked(golden_run, capsys):
    from referral_pipeline.cli import main

    assert main(["dispute", "resolve", "--deal", "D-00005", "--by", "bo", "--reason", "x"]) == 1
    assert "no open dispute" in capsys.readouterr().err
    assert main(["dispute", "open", "--deal", "D-00005", "--by", "bo", "--reason", "partner claims"]) == 0
    assert main(["dispute", "open", "--deal", "D-00005", "--by", "bo", "--reason", "again"]) == 1
    assert "already open" in capsys.readouterr().err
    assert main(["dispute", "open", "--referral", "REF-NOPE", "--by", "bo", "--reason", "x"]) == 1
    assert "unknown referral" in capsys.readouterr().err
    assert main(["dispute", "resolve", "--deal", "D-00005", "--by", "cy", "--reason", "settled"]) == 0
    with psycopg.connect(golden_run["url"]) as conn:
        rows = conn.execute(
            "select subject_type, subject_id, action, created_by from controls.disputes order by dispute_action_id"
        ).fetchall()
    assert rows == [("deal", "D-00005", "open", "bo"), ("deal", "D-00005", "resolve", "cy")]


def test_override_refuses_bad_credit_sets_and_writes_one_set(golden_run, capsys):
    from referral_pipeline.cli import main

    base = ["override", "D-00005", "--by", "dee", "--reason", "joint deal"]
    assert main([*base, "--credit", "PTR-0001=0.5", "--credit", "PTR-0002=0.4"]) == 1
    assert "sum to exactly 1" in capsys.readouterr().err
    assert main([*base, "--credit", "PTR-0001=0.5", "--credit", "PTR-9999=0.5"]) == 1
    assert "unknown partner" in capsys.readouterr().err
    assert main(["override", "D-NOPE", "--credit", "PTR-0001=1", "--by", "dee", "--reason", "x"]) == 1
    assert "unknown deal" in capsys.readouterr().err
    assert main([*base, "--credit", "PTR-0001=0.7", "--credit", "PTR-0002=0.3"]) == 0
    with psycopg.connect(golden_run["url"]) as conn:
        rows = conn.execute(
            "select override_set_id, deal_id, partner_id, credit from controls.attribution_overrides order by partner_id"
        ).fetchall()
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("D-00005", "PTR-0001", Decimal("0.7")),
        ("D-00005", "PTR-0002", Decimal("0.3")),
    ]
    assert rows[0][0] == rows[1][0]


def test_dbt_docs_generate_works_through_the_cli(golden_run, tmp_path):
    import json

    from referral_pipeline.cli import main

    assert main(["dbt", "--", "docs", "generate", "--target-path", str(tmp_path)]) == 0
    catalog = json.loads((tmp_path / "catalog.json").read_text())
    assert "model.referral.fct_attribution" in catalog["nodes"]
    assert (tmp_path / "index.html").exists()


def test_the_monthly_payout_batch_asset_verifies_a_published_month_and_writes_nothing(golden_run):
    from dagster import DagsterInstance

    from orchestration.definitions import defs

    before = {p: p.read_bytes() for p in golden_run["exports"].rglob("*") if p.is_file()}
    result = defs.resolve_job_def("payout_batch_job").execute_in_process(
        partition_key="2025-01-01", instance=DagsterInstance.ephemeral()
    )
    assert result.success
    [materialization] = result.asset_materializations_for_node("payout_batch")
    assert materialization.metadata["files_written"].value == 0
    assert {p: p.read_bytes() for p in golden_run["exports"].rglob("*") if p.is_file()} == before
