"""Command-line lists for partner managers and finance (held payout lines, disputes, attribution overrides) and
the withdrawal of an attribution override. The queries and checks live in referral_pipeline.controls.

Contract with the main CLI (referral_pipeline.cli):

- A handler is `cmd_...(args, conn) -> int`: it prints to stdout and returns the exit status. A refusal raises
  ControlError, whose one-line message the main CLI prints as `error: ...` with exit status 1.
- `run(handler)` comes from the main CLI: it returns a `func(args) -> int` that opens a warehouse connection,
  calls `handler(args, conn)` and closes the connection.
- `add_commands(sub, run)` registers `review list`, `disputes list` and `overrides list` on the main CLI's
  subparsers, each with `func=run(handler)` as its default.
- `add_override_withdraw(override_parser, run)` adds the form `override withdraw DEAL_ID --by NAME --reason TEXT`
  to the existing `override DEAL_ID --credit ... --by --reason` parser; call it after that parser's
  `set_defaults(func=...)`, which it keeps for the `--credit` form.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import psycopg

from .controls import disputes_list, overrides_list, review_queue, withdraw_override

Handler = Callable[[argparse.Namespace, psycopg.Connection], int]
Run = Callable[[Handler], Callable[[argparse.Namespace], int]]


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    return str(value)


def print_table(rows: list[dict], columns: dict[str, str], none: str) -> None:
    """Rows as an aligned plain-text table (`columns`: row key -> heading; amounts right-aligned), or the one
    line `none` when there is no row."""
    if not rows:
        print(none)
        return
    cells = [[_cell(r[k]) for k in columns] for r in rows]
    right = [isinstance(rows[0][k], Decimal) for k in columns]
    widths = [max(map(len, col)) for col in zip(columns.values(), *cells, strict=True)]
    for line in [list(columns.values()), *cells]:
        text = (c.rjust(w) if r else c.ljust(w) for c, w, r in zip(line, widths, right, strict=True))
        print("  ".join(text).rstrip())


def _subject(row: dict) -> str:
    if "subject_type" in row:
        return f"{row['subject_type']} {row['subject_id']}"
    return f"deal {row['deal_id']}" if row["deal_id"] else f"referral {row['referral_id']}"


# --- handlers -------------------------------------------------------------------------------------------


def cmd_review_list(args: argparse.Namespace, conn: psycopg.Connection) -> int:
    batch, rows = review_queue(conn, args.period)
    if batch is None:
        print("nothing is held: no payout batch is recorded yet")
        return 0
    what = f"{batch['batch_id']} (period {batch['period']}, {batch['status']})"
    if rows:
        print(f"review queue of {what}: {len(rows)} held line(s)")
    for r in rows:
        r["subject"] = _subject(r)
        r["payable"] = r["payable_at"].astimezone(dt.UTC).date()
    print_table(
        rows,
        {
            "event_id": "EVENT",
            "partner_id": "PARTNER",
            "subject": "SUBJECT",
            "amount": "AMOUNT",
            "payable": "PAYABLE",
            "reasons": "REASONS",
            "approved_by": "APPROVED BY",
        },
        f"nothing is held in {what}",
    )
    if any(r["approved_by"] for r in rows):
        print("lines with an approval are released in the next payout batch")
    return 0


def cmd_disputes_list(args: argparse.Namespace, conn: psycopg.Connection) -> int:
    rows = disputes_list(conn, include_history=args.all)
    for r in rows:
        r["subject"] = _subject(r)
    if args.all:
        columns = {"action": "ACTION", "created_by": "BY", "created_at": "AT (UTC)"}
        none = "no dispute has been recorded"
    else:
        columns = {"created_by": "OPENED BY", "created_at": "OPENED AT (UTC)"}
        none = "no dispute is open"
    print_table(rows, {"dispute_action_id": "ID", "subject": "SUBJECT", **columns, "reason": "REASON"}, none)
    return 0


def cmd_overrides_list(args: argparse.Namespace, conn: psycopg.Connection) -> int:
    if args.deal:
        rows = overrides_list(conn, deal_id=args.deal, in_force_only=False)
        columns = {"action_id": "ID", "deal_id": "DEAL", "action": "ACTION", "credits": "CREDITS"}
        extra, none = {"status": "STATUS"}, f"no attribution override has been recorded for deal {args.deal}"
    else:
        rows = overrides_list(conn)
        columns = {"action_id": "SET", "deal_id": "DEAL", "credits": "CREDITS"}
        extra, none = {}, "no attribution override is in force"
    print_table(
        rows, {**columns, "created_by": "BY", "created_at": "AT (UTC)", "reason": "REASON", **extra}, none
    )
    return 0


def cmd_override_withdraw(args: argparse.Namespace, conn: psycopg.Connection) -> int:
    """Reads args.withdraw_deal_id, args.by and args.reason."""
    withdrawal_id = withdraw_override(conn, args.withdraw_deal_id, by=args.by, reason=args.reason)
    print(
        f"attribution override of deal {args.withdraw_deal_id} withdrawn (withdrawal {withdrawal_id}); "
        "the deal gets its computed attribution from the next run"
    )
    return 0


# --- parsers --------------------------------------------------------------------------------------------


def add_commands(sub: argparse._SubParsersAction, run: Run) -> None:
    """Register `review list`, `disputes list` and `overrides list` on the main CLI's subparsers."""
    review = sub.add_parser("review", help="held payout lines (the review queue) and their reasons")
    rsub = review.add_subparsers(dest="review_command", required=True)
    rl = rsub.add_parser(
        "list",
        help="list the held payout lines of a batch with their reasons",
        description="List the held payout lines of a payout batch with their hold reasons. Without --period: "
        "the latest recorded batch, whose lines are the ones held now (every batch re-examines each unpaid "
        "line). A line with an approval recorded since is released in the next batch.",
    )
    rl.add_argument(
        "--period", metavar="YYYY-MM", help="the batch of this payout period instead of the latest"
    )
    rl.set_defaults(func=run(cmd_review_list))

    disputes = sub.add_parser("disputes", help="disputes on deals and referrals")
    dsub = disputes.add_subparsers(dest="disputes_command", required=True)
    dl = dsub.add_parser(
        "list",
        help="list the open disputes (who opened them, when and why)",
        description="List the open disputes: their subject, who opened them, when and why.",
    )
    dl.add_argument("--all", action="store_true", help="every open and resolve action instead, oldest first")
    dl.set_defaults(func=run(cmd_disputes_list))

    overrides = sub.add_parser("overrides", help="attribution overrides of deals")
    osub = overrides.add_subparsers(dest="overrides_command", required=True)
    ol = osub.add_parser(
        "list",
        help="list the attribution overrides in force",
        description="List the attribution overrides in force: set id, deal, partner=share credits, who, when "
        "and why. Withdraw one with `override withdraw DEAL_ID --by NAME --reason TEXT`.",
    )
    ol.add_argument(
        "--deal",
        metavar="DEAL_ID",
        help="only this deal, with its whole history: every override and withdrawal and which one is in force",
    )
    ol.set_defaults(func=run(cmd_overrides_list))


def add_override_withdraw(override_parser: argparse.ArgumentParser, run: Run) -> None:
    """Add `override withdraw DEAL_ID --by NAME --reason TEXT` to the `override DEAL_ID --credit ...` parser.
    Its `func` default (the --credit form) is kept and called for every other deal id."""
    override_parser.usage = (
        "%(prog)s DEAL_ID --credit PARTNER_ID=SHARE [--credit ...] --by NAME --reason TEXT\n"
        "       %(prog)s withdraw DEAL_ID --by NAME --reason TEXT"
    )
    override_parser.add_argument(
        "withdraw_deal_id",
        nargs="?",
        metavar="DEAL_ID",
        help="after `withdraw`: the deal whose override to withdraw; it gets its computed attribution from the "
        "next run",
    )
    set_credits, withdraw = override_parser.get_default("func"), run(cmd_override_withdraw)

    def dispatch(args: argparse.Namespace) -> int:
        # A wrong combination is a usage error (exit 2), found before the warehouse is touched.
        if args.deal_id == "withdraw":
            if not args.withdraw_deal_id:
                override_parser.error("give the deal: override withdraw DEAL_ID --by NAME --reason TEXT")
            if getattr(args, "credit", None):
                override_parser.error(
                    "override withdraw takes no --credit: it returns the deal to its computed attribution"
                )
            return withdraw(args)
        if args.withdraw_deal_id:
            override_parser.error(
                f"unexpected argument {args.withdraw_deal_id!r}: use `override DEAL_ID --credit PARTNER_ID=SHARE ...`"
                " or `override withdraw DEAL_ID`"
            )
        if not getattr(args, "credit", None):
            override_parser.error(
                "give at least one --credit PARTNER_ID=SHARE (or `override withdraw DEAL_ID`)"
            )
        return set_credits(args)

    override_parser.set_defaults(func=dispatch)
