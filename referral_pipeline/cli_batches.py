"""The `batch` commands: finance's sign-off of a payout batch before money moves (registered on the main CLI by
referral_pipeline.cli.build_parser; docs/finance.md, Signing off a batch).

With the rules setting `batch_approval: required`, the nightly run records each due batch as
`awaiting_approval` and publishes nothing:

- `batch show YYYY-MM`: the batch of a period, its state, totals, partner count, who recorded, approved or
  rejected it, and what to do next;
- `batch approve YYYY-MM --by NAME --reason TEXT`: one audited row, then the batch's files are published (data
  files first, manifest last, create-only), byte-identical to what the payout step publishes without the gate;
  the manifest says who approved it and when. Rerun it after an interruption: it finishes publishing;
- `batch reject YYYY-MM --by NAME --reason TEXT`: one audited row voids the batch (its ledger rows stay); the next
  nightly run records the period again.

Same contract as referral_pipeline.cli_controls: `add_commands(sub, run)`; a refusal raises ControlError, which
the main CLI prints as one line with exit status 1."""

from __future__ import annotations

import argparse

import psycopg

from .cli_controls import Run
from .cli_statements import _period
from .config import Settings
from .controls import ControlError


def cmd_batch_show(args: argparse.Namespace, conn: psycopg.Connection) -> int:
    from payout_exports.ledger import ensure_ledger_schema
    from payout_exports.publish import batch_text

    ensure_ledger_schema(conn)
    text = batch_text(conn, Settings.from_env().export_uri, args.period)
    if text is None:
        raise ControlError(
            f"no payout batch is recorded for period {args.period}: the nightly run records it after the month "
            "ends (see referral-pipeline status)"
        )
    print(text)
    return 0


def cmd_batch_approve(args: argparse.Namespace, conn: psycopg.Connection) -> int:
    from payout_exports.ledger import PayoutError, decided_text, ensure_ledger_schema
    from payout_exports.publish import approve_batch
    from payout_exports.store import PublishConflict

    ensure_ledger_schema(conn)
    export_uri = Settings.from_env().export_uri
    try:
        d = approve_batch(conn, export_uri, args.period, by=args.by, reason=args.reason, log=lambda _: None)
    except (PayoutError, PublishConflict) as exc:
        raise ControlError(str(exc)) from None
    b = d.batch
    if d.recorded:
        print(f"{b.batch_id} (period {b.period}) {decided_text(b)}")
    else:
        print(f"{b.batch_id} (period {b.period}) was already {decided_text(b)}; finishing its publication")
    where = f"{export_uri.rstrip('/')}/period={b.period}/"
    if d.files_written is None:
        print(
            "this database login may not mark a batch published (that is the payouts group's privilege): the "
            "next nightly run publishes it"
        )
    else:
        print(
            f"published {b.batch_id} at {where}: {b.partner_count} partners, {b.line_count} lines, "
            f"{b.program_amount:.2f} {b.program_currency} ({d.files_written} files written)"
        )
    return 0


def cmd_batch_reject(args: argparse.Namespace, conn: psycopg.Connection) -> int:
    from payout_exports.ledger import PayoutError, decided_text, ensure_ledger_schema
    from payout_exports.publish import reject_batch

    ensure_ledger_schema(conn)
    try:
        d = reject_batch(conn, args.period, by=args.by, reason=args.reason)
    except PayoutError as exc:
        raise ControlError(str(exc)) from None
    b = d.batch
    print(f"{b.batch_id} (period {b.period}) {decided_text(b)}")
    print(f"voided: nothing of it is published; the next nightly run records period {b.period} again")
    return 0


def add_commands(sub: argparse._SubParsersAction, run: Run) -> None:
    """Register `batch show|approve|reject YYYY-MM` on the main CLI's subparsers."""
    p = sub.add_parser(
        "batch",
        help="sign a payout batch off before it is published (rules setting batch_approval: required)",
        description="Finance's sign-off of a payout batch. With `batch_approval: required` in the rules file, "
        "the nightly run records each due batch as awaiting_approval and publishes nothing until it is approved; "
        "a rejected batch is voided and recorded again by the next run. Every decision is audited (--by, the "
        "database login, the time and --reason).",
        epilog="See docs/finance.md, Signing off a batch.",
    )
    actions = p.add_subparsers(dest="batch_command", required=True, metavar="ACTION")
    show = actions.add_parser(
        "show", help="a batch's state, totals, who recorded, approved or rejected it, and what to do next"
    )
    show.add_argument("period", type=_period, metavar="YYYY-MM", help="the payout period")
    show.set_defaults(func=run(cmd_batch_show))
    for name, handler, help_text in (
        ("approve", cmd_batch_approve, "approve a batch awaiting approval and publish its files"),
        ("reject", cmd_batch_reject, "reject a batch awaiting approval: it is voided and recorded again"),
    ):
        a = actions.add_parser(name, help=help_text, description=help_text)
        a.add_argument("period", type=_period, metavar="YYYY-MM", help="the payout period")
        a.add_argument(
            "--by", required=True, metavar="NAME", help="who signs the batch off (kept in the audit)"
        )
        a.add_argument("--reason", required=True, metavar="TEXT", help="why (kept in the audit)")
        a.set_defaults(func=run(handler))
