"""Sign-off before money moves (rules setting `batch_approval: required`; docs/finance.md, Signing off a batch), on
the golden example's payout batches.

The payout step runs on the golden inputs as in test_payout_golden.py (the runs of 2025-02-01 and 2025-03-01, the
only days that record a batch). A reference warehouse runs them without the setting; the gated warehouse runs
them with `batch_approval: required` and is signed off through the real CLI (`referral-pipeline batch ...`). What
the gated runs publish after approval is compared byte for byte with the reference's files (and with the golden
expected CSVs); the manifest differs only by its approval, its recording time and the rules file's checksum."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import psycopg
import pytest
from test_payout_golden import FILES, events_as_of
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
from payout_exports.ledger import PayoutError
from payout_exports.publish import approve_batch
from payout_exports.statements import publish_statements
from referral_pipeline.cli import main
from referral_pipeline.rules import RulesError, parse_rules
from referral_pipeline.warehouse import ensure_schema

from golden import scoped_env

FEB, MAR = dt.date(2025, 2, 1), dt.date(2025, 3, 1)
DATA_FILES = ("payouts.csv", "payout_lines.csv", "review_queue.csv", "deferred.csv")


def run_day(url: str, golden: Path, day: dt.date, export: Path, log: list[str] | None = None) -> list[str]:
    """The payout step of the nightly run of `day` on the golden inputs; returns the batch ids it published."""
    set_events(url, events_as_of(golden, day))
    set_partners(url, golden_partners(golden, day))
    set_rates(url, golden_rates(golden, day))
    out = log if log is not None else []
    published = payout_exports.publish_due(url, day, str(export), code_version="test", log=out.append)
    return [b.batch_id for b in published]


def new_warehouse(new_database, golden: Path, *, gated: bool) -> str:
    url = new_database("signoff")
    ensure_schema(url)
    rules = (golden / "program_rules.yml").read_text()
    setup_inputs(url, rules + ("\nbatch_approval: required\n" if gated else ""))
    return url


def cli(url: str, export: Path, capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    with scoped_env({"REFERRAL_WAREHOUSE_URL": url, "REFERRAL_EXPORT_URI": str(export)}):
        code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def files_of(root: Path, period: str) -> dict[str, bytes]:
    folder = root / f"period={period}"
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.is_dir() else {}


def expected_batch(golden: Path, period: str) -> dict[str, str]:
    return next(r for r in read_csv_file(golden / "expected_batches.csv") if r["period"] == period)


def read_published_expected(golden: Path, period: str) -> list[dict[str, str]]:
    """The golden expected paid lines of a period."""
    return [r for r in read_csv_file(golden / "expected_payout_lines.csv") if r["period"] == period]


def decisions(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select batch_id, period, decision, created_by, reason, session_user_name, created_at "
            "from controls.batch_decisions order by decision_id"
        ).fetchall()


def session_user(url: str) -> str:
    with psycopg.connect(url) as conn:
        return conn.execute("select session_user").fetchone()[0]


def ledger_count(url: str, sql: str, *params) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchone()[0]


@pytest.fixture(scope="module")
def reference(new_database, golden_dir, tmp_path_factory) -> Path:
    """What the runs publish without the sign-off setting (the golden batches)."""
    url = new_warehouse(new_database, golden_dir, gated=False)
    root = tmp_path_factory.mktemp("reference") / "exports"
    assert run_day(url, golden_dir, FEB, root) == ["batch-2025-01"]
    assert run_day(url, golden_dir, MAR, root) == ["batch-2025-02"]
    return root


def assert_published_as_reference(
    root: Path, reference: Path, period: str, batch_id: str, also_aside: tuple[str, ...] = ()
) -> dict:
    """The data files equal the reference's byte for byte (the batch id aside when it was recorded again), and
    the manifest equals it but for approval, created_at and rules_sha256. Returns the manifest."""
    got, ref = files_of(root, period), files_of(reference, period)
    assert sorted(got) == sorted(ref) == sorted([*DATA_FILES, "manifest.json"])
    for name in DATA_FILES:
        data = got[name].replace(batch_id.encode(), f"batch-{period}".encode())
        assert data == ref[name], name
    manifest, ref_manifest = json.loads(got["manifest.json"]), json.loads(ref["manifest.json"])
    assert manifest["batch_id"] == batch_id
    if batch_id == f"batch-{period}":  # the same bytes, so the same checksums
        assert manifest["files"] == ref_manifest["files"]
    else:
        assert [(f["name"], f["rows"]) for f in manifest["files"]] == [
            (f["name"], f["rows"]) for f in ref_manifest["files"]
        ]
    # created_at is when the batch was recorded, rules_sha256 the checksum of the (different) rules file
    aside = ("approval", "created_at", "rules_sha256", "files", "batch_id", *also_aside)
    assert {k: v for k, v in manifest.items() if k not in aside} == {
        k: v for k, v in ref_manifest.items() if k not in aside
    }
    assert "approval" not in ref_manifest
    return manifest


def test_gated_runs_publish_only_what_finance_approves(new_database, golden_dir, reference, tmp_path, capsys):
    url = new_warehouse(new_database, golden_dir, gated=True)
    root = tmp_path / "exports"
    log: list[str] = []

    # The run of 2025-02-01 records batch 2025-01, awaiting approval, and publishes nothing.
    assert run_day(url, golden_dir, FEB, root, log) == []
    assert not root.exists() or not any(root.rglob("*"))
    assert any("batch-2025-01 awaits approval" in line for line in log), log
    jan = expected_batch(golden_dir, "2025-01")
    code, out, _ = cli(url, root, capsys, "batch", "show", "2025-01")
    assert code == 0
    assert "batch batch-2025-01 (period 2025-01" in out and "AWAITING APPROVAL" in out
    assert (
        f"paid: {jan['partner_count']} partners, {jan['line_count']} lines, {jan['total_amount']} USD" in out
    )
    assert f"by the run of 2025-02-01 (database user {session_user(url)})" in out
    assert "referral-pipeline batch approve 2025-01 --by NAME --reason TEXT" in out
    code, out, _ = cli(url, root, capsys, "status")
    assert "awaiting sign-off: batch-2025-01 (period 2025-01" in out
    code, out, _ = cli(url, root, capsys, "payouts", "show", "--period", "2025-01")
    assert code == 1 and "NOT PUBLISHED" in out and "awaits approval" in out

    # The run of 2025-03-01: 2025-02 waits for the unapproved 2025-01 (its carried balances depend on it).
    log.clear()
    assert run_day(url, golden_dir, MAR, root, log) == []
    assert ledger_count(url, "select count(*) from payouts.batches") == 1
    assert any("2025-02 waits for it" in line for line in log), log

    # Approve: the batch is published, byte-identical to the ungated run, with who approved it in the manifest.
    code, out, err = cli(
        url, root, capsys, "batch", "approve", "2025-01", "--by", "alice", "--reason", "checked with the CRM"
    )
    assert code == 0, err
    assert "batch-2025-01 (period 2025-01) approved by alice" in out
    assert "published batch-2025-01" in out and "(5 files written)" in out
    [row] = decisions(url)
    assert row[:6] == (
        "batch-2025-01",
        "2025-01",
        "approve",
        "alice",
        "checked with the CRM",
        session_user(url),
    )
    manifest = assert_published_as_reference(root, reference, "2025-01", "batch-2025-01")
    approved_at = row[6].astimezone(dt.UTC)
    assert manifest["approval"] == {
        "approved_by": "alice",
        "database_user": session_user(url),
        "approved_at": approved_at.strftime("%Y-%m-%dT%H:%M:%S")
        + (f".{approved_at.microsecond:06d}" if approved_at.microsecond else "")
        + "Z",
        "reason": "checked with the CRM",
    }
    for name in DATA_FILES:  # and equal to the golden expected files
        expected = [r for r in read_csv_file(golden_dir / FILES[name]) if r["period"] == "2025-01"]
        assert read_published(root, "2025-01", name) == expected
    code, out, _ = cli(url, root, capsys, "batch", "show", "2025-01")
    assert "batch-2025-01 (period 2025-01, cutoff 2025-01-31T23:59:59.999999Z): published" in out
    assert "sign-off: approved by alice (database user" in out

    # Approving twice or rejecting a published batch: refused with one line, nothing written.
    for argv, says in (
        (("approve", "2025-01"), "cannot approve batch-2025-01 (period 2025-01): it is already published"),
        (("reject", "2025-01"), "a published batch is never voided"),
        (("approve", "2024-12"), "no payout batch is recorded for period 2024-12"),
    ):
        code, out, err = cli(url, root, capsys, "batch", *argv, "--by", "bob", "--reason", "again")
        assert code == 1 and out == ""
        assert err.count("\n") == 1 and err.startswith("error: ") and says in err, err
    assert len(decisions(url)) == 1

    # The next run records 2025-02, awaiting approval; reject voids it, with its audit row, and keeps its rows.
    assert run_day(url, golden_dir, MAR, root) == []
    assert files_of(root, "2025-02") == {}
    code, out, err = cli(
        url, root, capsys, "batch", "reject", "2025-02", "--by", "bob", "--reason", "fx rate to be confirmed"
    )
    assert code == 0, err
    assert "batch-2025-02 (period 2025-02) rejected by bob" in out and "voided" in out
    assert decisions(url)[-1][:6] == (
        "batch-2025-02",
        "2025-02",
        "reject",
        "bob",
        "fx rate to be confirmed",
        session_user(url),
    )
    feb = expected_batch(golden_dir, "2025-02")
    assert ledger_count(
        url, "select count(*) from payouts.ledger_lines where batch_id = 'batch-2025-02'"
    ) == int(feb["line_count"])
    for argv, says in (
        (("approve", "2025-02"), "cannot approve batch-2025-02 (period 2025-02): it was rejected by bob"),
        (("reject", "2025-02"), "cannot reject batch-2025-02 (period 2025-02): it was rejected by bob"),
    ):
        code, out, err = cli(url, root, capsys, "batch", *argv, "--by", "carol", "--reason", "x")
        assert code == 1 and err.count("\n") == 1 and says in err, err
    code, out, _ = cli(url, root, capsys, "batch", "show", "2025-02")
    assert "VOIDED (rejected)" in out and "the next nightly run records period 2025-02 again" in out
    with pytest.raises(PayoutError, match="a rejected batch is void and never published"):
        payout_exports.publish_batch(url, str(root), "batch-2025-02", log=lambda _: None)

    # The next run records the period again, under a new batch id; approved, it publishes what the ungated run did.
    log.clear()
    assert run_day(url, golden_dir, MAR, root, log) == []
    assert any("recorded batch-2025-02-r2" in line for line in log), log
    code, out, _ = cli(url, root, capsys, "batch", "show", "2025-02")
    assert "batch batch-2025-02-r2 (period 2025-02" in out and "AWAITING APPROVAL" in out
    assert "earlier batch batch-2025-02: rejected by bob" in out
    code, out, err = cli(url, root, capsys, "batch", "approve", "2025-02", "--by", "alice", "--reason", "ok")
    assert code == 0, err
    assert_published_as_reference(root, reference, "2025-02", "batch-2025-02-r2")
    assert payout_exports.reconcile_ledger(url) == []
    assert payout_exports.verify_published(url, str(root)) == []
    code, out, _ = cli(url, root, capsys, "payouts", "show", "--period", "2025-02")
    assert code == 0 and "batch batch-2025-02-r2" in out and "verified" in out
    # Partner statements explain the published batch of the period, not the void one.
    with psycopg.connect(url) as conn:
        statements = publish_statements(conn, str(root), period="2025-02", log=lambda _: None)
    assert statements.batch_ids == ("batch-2025-02-r2",)
    # Nothing more to do: a rerun of the last nightly writes nothing.
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert run_day(url, golden_dir, MAR, root) == []
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


class FailingStore(payout_exports.LocalStore):
    """A folder that fails after `limit` new files, like a publish interrupted by a crash."""

    def __init__(self, root: Path, limit: int):
        super().__init__(root)
        self.limit = limit

    def create(self, name: str, data: bytes) -> bool:
        if self.limit == 0:
            raise OSError("simulated crash while publishing")
        self.limit -= 1
        return super().create(name, data)


def test_an_interrupted_approval_is_finished_by_the_next_run_or_by_approving_again(
    new_database, golden_dir, reference, tmp_path, capsys
):
    url = new_warehouse(new_database, golden_dir, gated=True)
    root = tmp_path / "exports"
    assert run_day(url, golden_dir, FEB, root) == []

    # Approval recorded, publishing interrupted after two data files: no manifest, so nothing is published.
    with psycopg.connect(url) as conn, pytest.raises(OSError, match="simulated crash"):
        approve_batch(conn, FailingStore(root, 2), "2025-01", by="alice", reason="ok", log=lambda _: None)
    assert sorted(files_of(root, "2025-01")) == ["payout_lines.csv", "payouts.csv"]
    code, out, _ = cli(url, root, capsys, "batch", "show", "2025-01")
    assert "approved, publishing not finished" in out and "the next nightly run finishes them" in out
    code, _, err = cli(url, root, capsys, "batch", "reject", "2025-01", "--by", "bob", "--reason", "late")
    assert code == 1 and "already approved by alice" in err

    # The next nightly run finishes it first (byte-identical files), then records 2025-02 awaiting approval.
    assert run_day(url, golden_dir, MAR, root) == ["batch-2025-01"]
    assert_published_as_reference(root, reference, "2025-01", "batch-2025-01")
    assert ledger_count(url, "select count(*) from payouts.batches where status = 'awaiting_approval'") == 1

    # Interrupted again for 2025-02 (after the data files): rerunning `batch approve` finishes it, no new row.
    with psycopg.connect(url) as conn, pytest.raises(OSError):
        approve_batch(conn, FailingStore(root, 4), "2025-02", by="alice", reason="ok", log=lambda _: None)
    assert "manifest.json" not in files_of(root, "2025-02")
    code, out, err = cli(url, root, capsys, "batch", "approve", "2025-02", "--by", "alice", "--reason", "ok")
    assert code == 0, err
    assert "was already approved by alice" in out and "finishing its publication" in out
    assert "(1 files written)" in out
    assert [d[2] for d in decisions(url)] == ["approve", "approve"]
    assert_published_as_reference(root, reference, "2025-02", "batch-2025-02")
    assert payout_exports.verify_published(url, str(root)) == []


def test_the_ledger_refuses_to_publish_an_unapproved_batch(new_database, golden_dir, tmp_path, capsys):
    url = new_warehouse(new_database, golden_dir, gated=True)
    root = tmp_path / "exports"
    assert run_day(url, golden_dir, FEB, root) == []
    # The monthly `payout_batch` asset's path (publish one batch by hand) refuses it ...
    with pytest.raises(PayoutError, match="batch-2025-01 awaits approval"):
        payout_exports.publish_batch(url, str(root), "batch-2025-01", log=lambda _: None)
    assert files_of(root, "2025-01") == {}
    # ... and so does the database, whoever marks it published.
    with psycopg.connect(url) as conn, pytest.raises(psycopg.errors.RaiseException, match="awaits approval"):
        conn.execute("update payouts.batches set status = 'published' where batch_id = 'batch-2025-01'")
    # A control row can be neither changed nor doubled.
    cli(url, root, capsys, "batch", "reject", "2025-01", "--by", "bob", "--reason", "wrong month")
    with psycopg.connect(url) as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            "insert into controls.batch_decisions (batch_id, period, decision, created_by, reason) "
            "values ('batch-2025-01', '2025-01', 'approve', 'mallory', 'x')"
        )
    # The void batch paid nothing: an event paid in it alone is not "already paid in full" to the approve command.
    paid = next(r for r in read_published_expected(golden_dir, "2025-01") if r["previously_paid"] == "0.00")
    code, out, err = cli(url, root, capsys, "approve", paid["event_id"], "--by", "ana", "--reason", "checked")
    assert code == 0, err
    # --by and --reason are required and not blank.
    code, _, err = cli(url, root, capsys, "batch", "approve", "2025-01", "--by", " ", "--reason", "x")
    assert code == 1 and "--by is required" in err


def test_a_batch_recorded_without_the_setting_has_nothing_to_sign_off(
    new_database, golden_dir, reference, tmp_path, capsys
):
    url = new_warehouse(new_database, golden_dir, gated=False)
    root = tmp_path / "exports"
    assert run_day(url, golden_dir, FEB, root) == ["batch-2025-01"]
    manifest = json.loads((root / "period=2025-01" / "manifest.json").read_text())
    assert "approval" not in manifest
    assert files_of(root, "2025-01") == files_of(reference, "2025-01") | {
        "manifest.json": files_of(root, "2025-01")["manifest.json"]
    }
    code, out, _ = cli(url, root, capsys, "batch", "show", "2025-01")
    assert code == 0 and "sign-off: not required (recorded with batch_approval: none)" in out
    code, _, err = cli(url, root, capsys, "batch", "approve", "2025-01", "--by", "alice", "--reason", "x")
    assert code == 1 and "already published; it was recorded without sign-off" in err
    code, _, err = cli(url, root, capsys, "batch", "show", "2025-03")
    assert code == 1 and "no payout batch is recorded for period 2025-03" in err


def test_the_rules_setting():
    base = (Path(__file__).resolve().parents[1] / "referral_pipeline" / "default_rules.yml").read_text()
    assert parse_rules(base).batch_approval == "none"
    assert parse_rules(base + "\nbatch_approval: required\n").batch_approval == "required"
    assert parse_rules(base + "\nbatch_approval: none\n").batch_approval == "none"
    for value in ("yes", "true", "null", "Required"):
        with pytest.raises(
            RulesError, match=r"rules.yml: program: batch_approval: must be 'none' .* or 'required'"
        ):
            parse_rules(base + f"\nbatch_approval: {value}\n", "rules.yml")


def test_the_dagster_payout_step_records_without_publishing_and_the_monthly_asset_waits_for_approval(
    new_database, golden_dir, reference, tmp_path, capsys
):
    from dagster import DagsterInstance, materialize

    from orchestration.assets.payouts import (
        payout_batch,
        payout_files,
        payout_files_reconcile,
        payout_ledger,
        payout_ledger_reconciles,
    )
    from orchestration.resources import PipelineResource

    url = new_warehouse(new_database, golden_dir, gated=True)
    root = tmp_path / "exports"
    resources = {"pipeline": PipelineResource(warehouse_url=url, export_uri=str(root))}
    with DagsterInstance.ephemeral() as instance:
        # The nightly's payout step for 2025-02-01 (its two assets and their blocking checks): records, publishes
        # nothing.
        set_events(url, events_as_of(golden_dir, FEB))
        set_partners(url, golden_partners(golden_dir, FEB))
        set_rates(url, golden_rates(golden_dir, FEB))
        nightly = materialize(
            [payout_ledger, payout_files, payout_ledger_reconciles, payout_files_reconcile],
            partition_key="2025-02-01",
            resources=resources,
            instance=instance,
        )
        ledger = [
            m
            for m in nightly.asset_materializations_for_node("payout_ledger")
            if m.asset_key.path == ["payout_ledger"]
        ]
        assert ledger[0].metadata["batches_recorded"].value == ["batch-2025-01"]
        files = [
            m
            for m in nightly.asset_materializations_for_node("payout_files")
            if m.asset_key.path == ["payout_files"]
        ]
        assert files[0].metadata["batches_published"].value == []
        assert not root.exists() or not any(root.rglob("*"))
        failed = materialize(
            [payout_batch],
            partition_key="2025-01-01",
            resources=resources,
            instance=instance,
            raise_on_error=False,
        )
        assert not failed.success
        [failure] = [e for e in failed.all_events if e.is_step_failure]
        assert "batch-2025-01 awaits approval" in str(failure.step_failure_data.error)
        assert files_of(root, "2025-01") == {}

        with psycopg.connect(url) as conn, pytest.raises(OSError):
            approve_batch(conn, FailingStore(root, 1), "2025-01", by="alice", reason="ok", log=lambda _: None)
        done = materialize([payout_batch], partition_key="2025-01-01", resources=resources, instance=instance)
        [m] = done.asset_materializations_for_node("payout_batch")
        assert m.metadata["batch_id"].value == "batch-2025-01"
        assert m.metadata["files_written"].value == 4
    # recorded by the Dagster asset: code_version is the package's version, not the reference's "test"
    manifest = assert_published_as_reference(root, reference, "2025-01", "batch-2025-01", ("code_version",))
    assert manifest["approval"]["approved_by"] == "alice"


def test_a_warehouse_from_before_the_setting_is_upgraded_in_place(new_database, golden_dir, tmp_path):
    url = new_warehouse(new_database, golden_dir, gated=False)
    assert run_day(url, golden_dir, FEB, tmp_path / "exports") == ["batch-2025-01"]
    with psycopg.connect(url, autocommit=True) as conn:  # the tables as the previous version created them
        conn.execute("alter table rules.program drop column batch_approval")
        conn.execute("alter table payouts.batches drop column recorded_by")
        conn.execute("alter table payouts.batches drop constraint batches_status_check")
        conn.execute(
            "alter table payouts.batches add constraint batches_status_check "
            "check (status in ('recorded', 'published'))"
        )
        conn.execute("alter table payouts.batches add constraint batches_period_key unique (period)")
        conn.execute("drop table controls.batch_decisions")
    ensure_schema(url)
    with psycopg.connect(url) as conn:
        assert conn.execute("select batch_approval from rules.program").fetchall() == [("none",)]
        assert conn.execute("select batch_id, recorded_by from payouts.batches").fetchall() == [
            ("batch-2025-01", "")
        ]
        assert conn.execute(
            "select count(*) from pg_constraint where conrelid = 'payouts.batches'::regclass "
            "and conname = 'batches_period_key'"
        ).fetchone() == (0,)
        assert conn.execute("select count(*) from controls.batch_decisions").fetchone() == (0,)
    # ... and the gate works on it: rules with the setting, the next period awaits approval.
    setup_inputs(url, (golden_dir / "program_rules.yml").read_text() + "\nbatch_approval: required\n")
    assert run_day(url, golden_dir, MAR, tmp_path / "exports") == []
    with psycopg.connect(url) as conn:
        assert conn.execute(
            "select batch_id, status, recorded_by = session_user from payouts.batches order by period"
        ).fetchall() == [("batch-2025-01", "published", False), ("batch-2025-02", "awaiting_approval", True)]
