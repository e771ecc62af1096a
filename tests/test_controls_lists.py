"""The partner-manager and finance lists (held payout lines, disputes, attribution overrides), the withdrawal of an
override (audited, append-only, honoured by the dbt staging model) and approve's refusals of redundant approvals,
through the command-line layer (referral_pipeline.cli_controls) on a real warehouse."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from test_payout_helpers import event, set_events, set_partners, setup_inputs

import payout_exports
from referral_pipeline.cli import build_parser
from referral_pipeline.controls import ControlError, approve
from referral_pipeline.rules import load_rules, write_rules
from referral_pipeline.warehouse import ensure_schema

from golden import dbt_build, load_days, scoped_env

PARTNERS = [("P1", "Partner One", "active", True, "USD"), ("P3", "Partner Three", "suspended", False, "USD")]
DISPUTE = "insert into controls.disputes (subject_type, subject_id, action, created_by, reason) values (%s, %s, %s, %s, %s)"


def cli(url: str, *argv: str) -> int:
    """The real command line, in-process, on the warehouse at `url`."""
    with scoped_env({"REFERRAL_WAREHOUSE_URL": url}):
        args = build_parser().parse_args(argv)
        return args.func(args)


def out(capsys) -> list[str]:
    return capsys.readouterr().out.splitlines()


def count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(f"select count(*) from {table}").fetchone()[0]


@pytest.fixture
def january(warehouse_url):
    """A recorded January batch: R-1 paid; C-5 held (suspended partner, no tax form); R-8 held (disputed)."""
    setup_inputs(warehouse_url)
    set_partners(warehouse_url, PARTNERS)
    set_events(
        warehouse_url,
        [
            event("referral_bonus:R-1", "P1", "150.00", "2025-01-10T00:00:00Z"),
            event("commission:D-5:P3", "P3", "250.00", "2025-01-20T00:00:00Z"),
            event("referral_bonus:R-8", "P1", "50.00", "2025-01-06T00:00:00Z"),
        ],
    )
    with psycopg.connect(warehouse_url) as conn:
        conn.execute(DISPUTE, ("referral", "R-8", "open", "pm", "partner says no referral"))
    payout_exports.record_due_batches(
        warehouse_url, dt.date(2025, 2, 1), code_version="t", log=lambda _: None
    )
    return warehouse_url


def test_review_list_without_batch_says_nothing_is_held(warehouse_url, capsys):
    assert cli(warehouse_url, "review", "list") == 0
    assert out(capsys) == ["nothing is held: no payout batch is recorded yet"]


def test_review_list_shows_the_held_lines_of_the_latest_batch(january, capsys):
    with psycopg.connect(january) as conn:
        approve(conn, "commission:D-5:P3", by="fin", reason="tax form received by mail")
    assert cli(january, "review", "list") == 0
    assert out(capsys) == [
        "review queue of batch-2025-01 (period 2025-01, recorded): 2 held line(s)",
        "EVENT               PARTNER  SUBJECT       AMOUNT  PAYABLE     REASONS                            APPROVED BY",
        "referral_bonus:R-8  P1       referral R-8   50.00  2025-01-06  disputed",
        "commission:D-5:P3   P3       deal D-5      250.00  2025-01-20  partner_inactive;missing_tax_form  fin",
        "lines with an approval are released in the next payout batch",
    ]
    assert cli(january, "review", "list", "--period", "2025-01") == 0
    assert len(out(capsys)) == 5
    for period, message in [
        (
            "2025-02",
            "no payout batch is recorded for period 2025-02: recorded periods are 2025-01 to 2025-01",
        ),
        ("2025-13", "--period '2025-13': expected a month YYYY-MM, e.g. 2025-01"),
    ]:
        with pytest.raises(ControlError, match=f"^{message}$"):
            cli(january, "review", "list", "--period", period)
    # the dispute is resolved and the approval released the commission: February holds nothing
    with psycopg.connect(january) as conn:
        conn.execute(DISPUTE, ("referral", "R-8", "resolve", "pm", "referral confirmed"))
    payout_exports.record_due_batches(january, dt.date(2025, 3, 1), code_version="t", log=lambda _: None)
    assert cli(january, "review", "list") == 0
    assert out(capsys) == ["nothing is held in batch-2025-02 (period 2025-02, recorded)"]


def test_approve_refuses_an_approved_or_fully_paid_event_and_writes_nothing(january):
    with psycopg.connect(january) as conn:
        approve(conn, "commission:D-5:P3", by="fin", reason="tax form received")
    with psycopg.connect(january) as conn:
        with pytest.raises(
            ControlError,
            match=r"^commission:D-5:P3 is already approved by fin at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: tax form received$",
        ):
            approve(conn, "commission:D-5:P3", by="ann", reason="again")
        with pytest.raises(
            ControlError,
            match=r"^referral_bonus:R-1 is already paid in full \(150.00 in batch-2025-01\): there is no hold to release$",
        ):
            approve(conn, "referral_bonus:R-1", by="fin", reason="pay it")
    assert count(january, "controls.approvals") == 1


def test_disputes_list_open_by_default_and_all_with_history(warehouse_url, capsys):
    assert cli(warehouse_url, "disputes", "list") == 0
    assert cli(warehouse_url, "disputes", "list", "--all") == 0
    assert out(capsys) == ["no dispute is open", "no dispute has been recorded"]
    with psycopg.connect(warehouse_url) as conn:
        conn.execute(DISPUTE, ("deal", "D-7", "open", "ann", "wrong partner"))
        conn.execute(DISPUTE, ("referral", "R-8", "open", "bob", "duplicate referral"))
        conn.execute(DISPUTE, ("deal", "D-7", "resolve", "ann", "partner confirmed"))
    assert cli(warehouse_url, "disputes", "list") == 0
    lines = out(capsys)
    assert lines[0].split() == ["ID", "SUBJECT", "OPENED", "BY", "OPENED", "AT", "(UTC)", "REASON"]
    assert lines[1].split()[:4] == ["2", "referral", "R-8", "bob"] and lines[1].endswith("duplicate referral")
    assert len(lines) == 2
    assert cli(warehouse_url, "disputes", "list", "--all") == 0
    lines = out(capsys)
    assert [x.split()[:5] for x in lines[1:]] == [
        ["1", "deal", "D-7", "open", "ann"],
        ["2", "referral", "R-8", "open", "bob"],
        ["3", "deal", "D-7", "resolve", "ann"],
    ]


def test_override_withdraw_is_audited_and_the_deal_gets_its_computed_attribution_back(
    new_database, golden_dir, tmp_path, capsys
):
    url = new_database("ctl")  # the golden days up to 2025-01-05: deals D-00001, D-00002, ...
    ensure_schema(url)
    with psycopg.connect(url) as conn:
        write_rules(conn, load_rules(golden_dir / "program_rules.yml"))
    load_days(url, golden_dir / "landing", dt.date(2025, 1, 1), dt.date(2025, 1, 5))

    def build_and_read_payout_credits() -> list[tuple]:
        proc = dbt_build(url, tmp_path, dt.date(2025, 1, 5))
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
        with psycopg.connect(url) as conn:
            return conn.execute(
                "select partner_id, credit::text, credit_source from marts.fct_attribution"
                " where model = 'payout' and deal_id = 'D-00001' order by 1"
            ).fetchall()

    computed = build_and_read_payout_credits()
    assert computed and {source for *_, source in computed} == {"model"}
    assert cli(url, "overrides", "list") == 0
    assert out(capsys) == ["no attribution override is in force"]

    credits = ["--credit", "PTR-0002=0.5", "--credit", "PTR-0004=0.5"]
    assert cli(url, "override", "D-00001", *credits, "--by", "ann", "--reason", "joint deal") == 0
    assert cli(url, "overrides", "list") == 0
    lines = out(capsys)
    assert lines[0] == "attribution override set 1 written for deal D-00001; it applies from the next run"
    assert lines[1].split()[:6] == ["SET", "DEAL", "CREDITS", "BY", "AT", "(UTC)"]
    assert lines[2].startswith("1    D-00001  PTR-0002=0.5, PTR-0004=0.5  ann  ") and lines[2].endswith(
        "joint deal"
    )
    assert build_and_read_payout_credits() == [
        ("PTR-0002", "0.5", "override"),
        ("PTR-0004", "0.5", "override"),
    ]

    assert cli(url, "override", "withdraw", "D-00001", "--by", "bob", "--reason", "agreed with both") == 0
    assert out(capsys) == [
        "attribution override of deal D-00001 withdrawn (withdrawal 2); the deal gets its computed attribution "
        "from the next run"
    ]
    with psycopg.connect(url) as conn:
        audit = conn.execute(
            "select withdrawal_id, deal_id, created_by, reason from controls.attribution_override_withdrawals"
        ).fetchall()
    assert audit == [(2, "D-00001", "bob", "agreed with both")]
    assert count(url, "controls.attribution_overrides") == 2  # the override rows are kept
    assert cli(url, "overrides", "list") == 0
    assert cli(url, "overrides", "list", "--deal", "D-00001") == 0
    lines = out(capsys)
    assert lines[0] == "no attribution override is in force"
    assert [(x.split()[2], x.split()[-1]) for x in lines[2:]] == [
        ("override", "withdrawn"),
        ("withdraw", "force"),
    ]
    with pytest.raises(ControlError, match="^deal D-00001 has no attribution override in force"):
        cli(url, "override", "withdraw", "D-00001", "--by", "bob", "--reason", "again")
    for argv, message in [
        (["withdraw", "--by", "x", "--reason", "y"], "give the deal"),
        (["withdraw", "D-00001", *credits, "--by", "x", "--reason", "y"], "takes no --credit"),
        (["D-00001", "D-00002", *credits, "--by", "x", "--reason", "y"], "unexpected argument 'D-00002'"),
        (["D-00001", "--by", "x", "--reason", "y"], "give at least one --credit"),
    ]:
        with pytest.raises(SystemExit) as usage:  # a usage error: exit 2, before the warehouse is touched
            cli(url, "override", *argv)
        assert usage.value.code == 2 and message in capsys.readouterr().err
    assert count(url, "controls.attribution_override_withdrawals") == 1
    assert build_and_read_payout_credits() == computed
