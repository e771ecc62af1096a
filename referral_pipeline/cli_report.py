"""The `report` command (registered on the main CLI by referral_pipeline.cli.build_parser).

Same contract as referral_pipeline.cli_controls: `add_commands(sub, run)` registers the command on the main
CLI's subparsers; `run(handler)` wraps a `handler(args, conn) -> int` with a warehouse connection. The report
itself is built by referral_pipeline.report (see docs/report.md)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import psycopg

from .cli_controls import Run
from .config import Settings
from .controls import ControlError


def _period(text: str) -> str:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", text):
        raise argparse.ArgumentTypeError(f"expected a month YYYY-MM, got {text!r}")
    return text


def default_out_dir(settings: Settings | None = None) -> Path:
    """The data folder's `reports/`."""
    return (settings or Settings.from_env()).data_dir / "reports"


def cmd_report(args: argparse.Namespace, conn: psycopg.Connection) -> int:
    from .report import ReportError, write_report

    out = Path(args.out).expanduser() if args.out else default_out_dir()
    try:
        files = write_report(conn, out, args.period)
    except ReportError as exc:
        raise ControlError(str(exc)) from None
    print(f"report: {files.html}")
    print(f"charts: {', '.join(p.name for p in files.pngs)} in {files.html.parent}")
    return 0


def add_commands(sub: argparse._SubParsersAction, run: Run) -> None:
    """Register `report [--period YYYY-MM] [--out DIR]`."""
    p = sub.add_parser(
        "report",
        help="write the program report: one HTML file that opens offline, and its charts as PNG",
        description="Write the program report from the warehouse's marts: partner performance over months, "
        "attributed revenue per partner under each attribution model, payouts per month and currency "
        "(paid, held, deferred) and data quality per day. One self-contained HTML file (charts inline, "
        "opens offline) and each chart as a PNG file; the same warehouse always writes the same bytes.",
    )
    p.add_argument(
        "--period",
        type=_period,
        metavar="YYYY-MM",
        help="keep only the months up to and including this one (monthly performance, won deals, payout "
        "batches, data-quality days); files are named program-report-YYYY-MM*",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="folder to write into (created if needed; default: the data folder's reports/)",
    )
    p.set_defaults(func=run(cmd_report))
