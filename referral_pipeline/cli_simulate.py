"""The `simulate` command (registered on the main CLI by referral_pipeline.cli.build_parser).

Same contract as referral_pipeline.cli_controls: `add_commands(sub, run)` registers the command on the main
CLI's subparsers; `run(handler)` wraps a `handler(args, conn) -> int` with a warehouse connection. A refusal
(an empty warehouse, --from after --to, a failed dbt build) raises ControlError, which the main CLI prints as
one line with exit status 1; an invalid rules file raises RulesError (one line naming the file and field)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import psycopg

from .cli_controls import Run
from .config import Settings
from .controls import ControlError


def _month(text: str) -> str:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", text):
        raise argparse.ArgumentTypeError(f"expected a month YYYY-MM, got {text!r}")
    return text


def cmd_simulate(args: argparse.Namespace, conn: psycopg.Connection) -> int:
    from .console import Reporter
    from .simulate import SimulationError, simulate
    from .warehouse import resolve_url

    settings = Settings.from_env()
    url = resolve_url(settings)
    conn.close()  # the simulation opens its own sessions
    try:
        result = simulate(
            url,
            args.rules,
            args.month_from,
            args.month_to,
            settings=settings,
            out_dir=Path(args.out).expanduser() if args.out else None,
            report=Reporter(),
        )
    except SimulationError as exc:
        raise ControlError(str(exc)) from None
    print("\n".join(result.lines))
    print(
        f"written to {result.out_dir}: simulation.html, partner_months.csv, programme.csv, events.csv, "
        "tier_changes.csv, attribution_shift.csv, attribution_models.csv"
    )
    return 0


def add_commands(sub: argparse._SubParsersAction, run: Run) -> None:
    """Register `simulate --rules FILE --from YYYY-MM --to YYYY-MM [--out DIR]`."""
    p = sub.add_parser(
        "simulate",
        help="what-if: what past months would have paid under a proposed rules file (changes nothing)",
        description="Recompute attribution, tiers and reward events under a proposed rules file over the "
        "history in the warehouse, with the same dbt models as the nightly, in scratch schemas that are "
        "dropped afterwards (also on failure or interrupt), and compare with what the last nightly run "
        "computed: per partner and month the entitlement now and proposed, the delta and tier changes, the "
        "programme total, and per attribution model the attribution shift. Prints a summary and writes CSV "
        "files and an HTML page with a chart. The marts, the ledger, the controls and the exports are "
        "never touched.",
        epilog="Output goes to the data folder's simulations/<id>/ unless --out is given. See docs/simulate.md.",
    )
    p.add_argument("--rules", required=True, metavar="FILE", help="the proposed rules file (YAML)")
    p.add_argument(
        "--from", dest="month_from", required=True, type=_month, metavar="YYYY-MM", help="first month"
    )
    p.add_argument("--to", dest="month_to", required=True, type=_month, metavar="YYYY-MM", help="last month")
    p.add_argument(
        "--out", metavar="DIR", help="folder to write into (default: the data folder's simulations/<id>/)"
    )
    p.set_defaults(func=run(cmd_simulate))
