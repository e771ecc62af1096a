"""The `statements` command (registered on the main CLI by referral_pipeline.cli.build_parser).

Same contract as referral_pipeline.cli_controls: `add_commands(sub, run)` registers the command on the main
CLI's subparsers; `run(handler)` wraps a `handler(args, conn) -> int` with a warehouse connection. A refusal
(no published batch for the period, a statement already published with other content) raises ControlError,
which the main CLI prints as one line with exit status 1."""

from __future__ import annotations

import argparse
import re

import psycopg

from .cli_controls import Run
from .config import Settings
from .controls import ControlError


def _period(text: str) -> str:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", text):
        raise argparse.ArgumentTypeError(f"expected a month YYYY-MM, got {text!r}")
    return text


def _quarter(text: str) -> str:
    if not re.fullmatch(r"\d{4}-Q[1-4]", text):
        raise argparse.ArgumentTypeError(f"expected a quarter YYYY-Qn (n = 1 to 4), got {text!r}")
    return text


def cmd_statements(args: argparse.Namespace, conn: psycopg.Connection) -> int:
    from payout_exports.ledger import PayoutError
    from payout_exports.statements import publish_statements
    from payout_exports.store import PublishConflict

    export_uri = Settings.from_env().export_uri
    try:
        result = publish_statements(
            conn, export_uri, period=args.period, quarter=args.quarter, log=lambda _: None
        )
    except (PayoutError, PublishConflict) as exc:
        raise ControlError(str(exc)) from None
    batches = ", ".join(result.batch_ids)
    if result.written:
        print(
            f"statements for {result.what} ({batches}): {result.partner_count} partners, "
            f"{result.written} files written to {result.where}"
        )
    else:
        print(
            f"statements for {result.what} ({batches}) are already published at {result.where} "
            f"({result.partner_count} partners); nothing new written"
        )
    return 0


def add_commands(sub: argparse._SubParsersAction, run: Run) -> None:
    """Register `statements (--period YYYY-MM | --quarter YYYY-Qn)` on the main CLI's subparsers."""
    p = sub.add_parser(
        "statements",
        help="publish partner statements (CSV and HTML per partner) for a published payout batch or a quarter",
        description="Publish, for every partner of a published payout batch (paid, held or deferred), a "
        "statement that explains the batch line by line: one CSV file and one HTML page per partner, next to "
        "the batch's files under period=YYYY-MM/statements/ with their own manifest.json. With --quarter: the "
        "quarter's published months summed, under quarter=YYYY-Qn/statements/through=YYYY-MM/. Published "
        "statements are never overwritten; rerunning writes nothing.",
        epilog="The statements go to REFERRAL_EXPORT_URI (a folder or s3://bucket/prefix), where the batch is "
        "published. See docs/statements.md.",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--period", type=_period, metavar="YYYY-MM", help="the payout period (its batch)")
    which.add_argument(
        "--quarter", type=_quarter, metavar="YYYY-Qn", help="a quarter: its published months, summed"
    )
    p.set_defaults(func=run(cmd_statements))
