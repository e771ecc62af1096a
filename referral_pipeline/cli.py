"""`referral-pipeline`: the command-line contract of SPEC section 3."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

from .config import DBT_PROJECT_DIR, Settings


class CliError(Exception):
    """A failure reported as one line on stderr with exit status 1."""


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def _connect():
    from .warehouse import connect, prepare

    return connect(prepare(Settings.from_env()))


# --- commands -------------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from orchestration.run import RunFailed, run_nightly

    began = time.monotonic()
    what = f"{args.date}" if not getattr(args, "end", None) else f"{args.date}..{args.end}"
    print(f"nightly run {what}: loading landing partitions, rules, dbt build, payouts", flush=True)
    try:
        summary = run_nightly(args.date, getattr(args, "end", None))
    except RunFailed as exc:
        raise CliError(
            f"nightly run {what} failed: {exc}. Fix the cause and rerun the same command (reruns are idempotent)."
        ) from None
    print(f"nightly run {what} succeeded in {time.monotonic() - began:.1f}s (run id {summary.run_id})")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from .generate import generate

    summary = generate(Path(args.out), args.start, args.days, scale=args.scale, seed=args.seed)
    rows = ", ".join(f"{k} {v}" for k, v in summary["rows"].items())
    print(
        f"wrote {summary['files']} files to {args.out} ({args.days} days from {args.start}): {rows}; "
        f"{summary['dirty_rows']} rows that loading will reject"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(start=args.start, days=args.days, scale=args.scale, seed=args.seed)


def cmd_approve(args: argparse.Namespace) -> int:
    from .controls import approve

    with _connect() as conn:
        approval_id = approve(conn, args.event_id, by=args.by, reason=args.reason)
    print(
        f"approved {args.event_id} (approval {approval_id}); it is released from holds in the next payout batch"
    )
    return 0


def cmd_dispute(args: argparse.Namespace) -> int:
    from .controls import dispute

    with _connect() as conn:
        dispute(
            conn, args.action, deal_id=args.deal, referral_id=args.referral, by=args.by, reason=args.reason
        )
    subject = f"deal {args.deal}" if args.deal else f"referral {args.referral}"
    print(f"dispute on {subject}: {'opened' if args.action == 'open' else 'resolved'}")
    return 0


def cmd_override(args: argparse.Namespace) -> int:
    from .controls import override

    with _connect() as conn:
        set_id = override(conn, args.deal_id, args.credit, by=args.by, reason=args.reason)
    print(f"attribution override set {set_id} written for deal {args.deal_id}; it applies from the next run")
    return 0


def cmd_payouts_show(args: argparse.Namespace) -> int:
    import payout_exports

    from .warehouse import prepare

    settings = Settings.from_env()
    text, ok = payout_exports.show_batch(prepare(settings), settings.export_uri, args.period)
    print(text)
    return 0 if ok else 1


def cmd_warehouse(args: argparse.Namespace) -> int:
    from .warehouse import prepare, psql_command

    settings = Settings.from_env()
    if args.action == "stop":
        if settings.warehouse_url:
            raise CliError("REFERRAL_WAREHOUSE_URL is set: that server is not the project's to stop")
        from .warehouse import stop_embedded

        print(stop_embedded(settings))
        return 0
    url = prepare(settings)
    print(f"warehouse: {url}\nconnect:   {psql_command(url)}")
    return 0


def cmd_dbt(args: argparse.Namespace) -> int:
    from orchestration.dbt_project import dbt_executable

    from .dbt_cli import dbt_env
    from .warehouse import prepare

    url = prepare(Settings.from_env())
    extra = [a for a in args.dbt_args if a != "--"]
    env = {**os.environ, **dbt_env(url)}
    return subprocess.call(
        [
            dbt_executable(),
            *extra,
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
        ],
        cwd=DBT_PROJECT_DIR,
        env=env,
    )


# --- parser ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="referral-pipeline", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run the nightly job for one day (landing partition dt=DATE)")
    r.add_argument("--date", type=_date, required=True)
    r.set_defaults(func=cmd_run)

    b = sub.add_parser("backfill", help="run the nightly job over a range of days as one backfill run")
    b.add_argument("--start", dest="date", type=_date, required=True)
    b.add_argument("--end", type=_date, required=True)
    b.set_defaults(func=cmd_run)

    g = sub.add_parser("generate", help="write realistic, seeded sample exports in the landing layout")
    g.add_argument("--out", required=True)
    g.add_argument("--start", type=_date, required=True)
    g.add_argument("--days", type=int, required=True)
    g.add_argument("--scale", default="small", choices=["small", "medium", "large"])
    g.add_argument("--seed", type=int, default=7)
    g.set_defaults(func=cmd_generate)

    d = sub.add_parser("demo", help="generate sample exports, run the nightly job over them, publish payouts")
    d.add_argument("--start", type=_date, default=dt.date(2025, 1, 1), help="first day (default 2025-01-01)")
    d.add_argument("--days", type=int, default=60)
    d.add_argument("--scale", default="small", choices=["small", "medium", "large"])
    d.add_argument("--seed", type=int, default=7)
    d.set_defaults(func=cmd_demo)

    a = sub.add_parser("approve", help="release a reward event from every hold")
    a.add_argument("event_id")
    a.add_argument("--by", required=True)
    a.add_argument("--reason", required=True)
    a.set_defaults(func=cmd_approve)

    ds = sub.add_parser("dispute", help="open or resolve a dispute on a deal or a referral")
    ds.add_argument("action", choices=["open", "resolve"])
    who = ds.add_mutually_exclusive_group(required=True)
    who.add_argument("--deal")
    who.add_argument("--referral")
    ds.add_argument("--by", required=True)
    ds.add_argument("--reason", required=True)
    ds.set_defaults(func=cmd_dispute)

    o = sub.add_parser("override", help="override the attribution credit of a deal")
    o.add_argument("deal_id")
    o.add_argument("--credit", action="append", default=[], metavar="PARTNER_ID=SHARE")
    o.add_argument("--by", required=True)
    o.add_argument("--reason", required=True)
    o.set_defaults(func=cmd_override)

    pay = sub.add_parser("payouts", help="finance views of published payout batches")
    paysub = pay.add_subparsers(dest="payouts_command", required=True)
    show = paysub.add_parser("show", help="summarise a batch from the ledger and verify its published files")
    show.add_argument("--period", required=True, help="YYYY-MM")
    show.set_defaults(func=cmd_payouts_show)

    w = sub.add_parser("warehouse", help="print the warehouse URL (starting the embedded server) or stop it")
    w.add_argument("action", nargs="?", default="info", choices=["info", "stop"])
    w.set_defaults(func=cmd_warehouse)

    t = sub.add_parser(
        "dbt", help="run dbt against the configured warehouse, e.g. `referral-pipeline dbt -- docs generate`"
    )
    t.add_argument("dbt_args", nargs=argparse.REMAINDER)
    t.set_defaults(func=cmd_dbt)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # the known refusals of the libraries below carry their own clear message
        from .controls import ControlError
        from .rules import RulesError

        if isinstance(exc, (ControlError, RulesError)):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
