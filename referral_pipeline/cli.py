"""referral-pipeline: load the partner program's exports, attribute deals, compute rewards and publish payouts.

Exit status: 0 success, 1 a failed run or a refused action (one line on stderr says why and what to do),
2 a usage error. Configuration comes from the REFERRAL_* environment variables (see `docs/operations.md`)."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path

from .config import DBT_PROJECT_DIR, ConfigError, Settings

EPILOG = (
    "Configuration: REFERRAL_DATA_DIR (default ./.referral), REFERRAL_WAREHOUSE_URL, REFERRAL_LANDING_URI, "
    "REFERRAL_EXPORT_URI, REFERRAL_RULES_FILE, REFERRAL_IP_HASH_KEY."
)
KEEP_RUN_LOGS = 30


class CliError(Exception):
    """A failure reported as one line on stderr with exit status 1."""


# --- argument types (a bad value is a usage error: exit 2) -----------------------------------------------


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def _period(text: str) -> str:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", text):
        raise argparse.ArgumentTypeError(f"expected a month YYYY-MM, got {text!r}")
    return text


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def audited(parser: argparse.ArgumentParser, who: str) -> None:
    """--by and --reason, which every control command records in its audit row."""
    parser.add_argument("--by", required=True, type=_nonblank, metavar="NAME", help=who)
    parser.add_argument(
        "--reason", required=True, type=_nonblank, metavar="TEXT", help="why (kept in the audit trail)"
    )


def _nonblank(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be blank")
    return text


# --- shared steps -------------------------------------------------------------------------------------------


def _settings() -> Settings:
    return Settings.from_env()


def _warehouse(settings: Settings) -> str:
    """The warehouse URL with schemas created; a connection problem is one line naming the setting."""
    import psycopg

    from .warehouse import prepare

    try:
        return prepare(settings)
    except psycopg.Error as exc:
        where = (
            f"REFERRAL_WAREHOUSE_URL={_redact(settings.warehouse_url)}"
            if settings.warehouse_url
            else f"the embedded warehouse in {settings.data_dir / 'warehouse'}"
        )
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CliError(f"cannot use {where}: {first}; check the URL and that the server is running") from None


def _redact(url: str | None) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url or "")


def _connect(settings: Settings | None = None):
    from .warehouse import connect

    return connect(_warehouse(settings or _settings()))


def _with_connection(handler):
    """A command function that opens a warehouse connection for `handler(args, conn)`."""

    def func(args: argparse.Namespace) -> int:
        with _connect() as conn:
            return handler(args, conn)

    return func


def _dagster_home(settings: Settings) -> Path:
    """DAGSTER_HOME when set, else the data folder's instance (created on first use), shared by every command
    and by `referral-pipeline ui`."""
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(
            "# The Dagster instance of referral-pipeline: runs and their events are kept here.\ntelemetry:\n  enabled: false\n"
        )
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _run_log(settings: Settings, what: str) -> Path:
    """A new log file for one run; only the newest KEEP_RUN_LOGS are kept."""
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    old = sorted(settings.log_dir.glob("run-*.log"))
    for f in old[: max(0, len(old) - KEEP_RUN_LOGS + 1)]:
        f.unlink(missing_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return settings.log_dir / f"run-{stamp}-{what}.log"


def preflight(settings: Settings) -> str:
    """Everything a run needs that can be checked before it replaces anything: the IP-hash key, the rules
    file, the landing root and the warehouse. Returns the warehouse URL."""
    from .landing import check_landing_root
    from .rules import load_rules

    settings.check_ip_hash_key()
    if not settings.rules_file.is_file():
        raise ConfigError(f"rules file {settings.rules_file} does not exist (REFERRAL_RULES_FILE)")
    load_rules(settings.rules_file)
    check_landing_root(settings.landing_uri)
    return _warehouse(settings)


# --- commands -------------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from orchestration.run import RunFailed, check_run_range, run_nightly

    from .console import Reporter

    settings = _settings()
    start, end = args.date, getattr(args, "end", None) or args.date
    what = f"{start}" if start == end else f"{start}..{end}"
    check_run_range(start, end)
    preflight(settings)
    _dagster_home(settings)
    log = None if args.verbose else _run_log(settings, what.replace("..", "_"))
    began = time.monotonic()
    report = Reporter()
    report.line(f"nightly run {what}: load landing partitions, rules, dbt build, payouts")
    try:
        summary = run_nightly(start, end, output_log=log, report=report)
    except RunFailed as exc:
        where = f"; full log: {log}" if log else ""
        raise CliError(
            f"nightly run {what} failed: {exc}{where}. Fix the cause and rerun the same command (reruns are idempotent)"
        ) from None
    report.line(
        f"nightly run {what} succeeded in {time.monotonic() - began:.0f}s (run {summary.run_id[:8]})"
        + (f"; log: {log}" if log else "")
    )
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from orchestration.run import RunFailed, run_audit

    from .console import Reporter

    settings = _settings()
    _warehouse(settings)
    _dagster_home(settings)
    log = None if args.verbose else _run_log(settings, "audit")
    began = time.monotonic()
    report = Reporter()
    report.line("data audit: the full-history dbt data tests that the nightly leaves out (reads only)")
    try:
        summary = run_audit(output_log=log, report=report)
    except RunFailed as exc:
        where = f"; full log: {log}" if log else ""
        raise CliError(
            f"data audit failed: {exc}{where}. The failing rows point at the data (or model) to fix; the payout "
            "files already published are not affected, and the next nightly rebuilds the models"
        ) from None
    report.line(
        f"data audit passed in {time.monotonic() - began:.0f}s (run {summary.run_id[:8]})"
        + (f"; log: {log}" if log else "")
    )
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

    return run_demo(start=args.start, days=args.days, scale=args.scale, seed=args.seed, force=args.force)


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

    settings = _settings()
    text, ok = payout_exports.show_batch(_warehouse(settings), settings.export_uri, args.period)
    print(text)
    return 0 if ok else 1


def cmd_status(args: argparse.Namespace) -> int:
    from .status import status_text

    settings = _settings()
    print(status_text(_warehouse(settings), settings))
    return 0


def cmd_warehouse(args: argparse.Namespace) -> int:
    from .warehouse import psql_command, stop_embedded

    settings = _settings()
    if args.action == "stop":
        if settings.warehouse_url:
            raise CliError("REFERRAL_WAREHOUSE_URL is set: that server is not the project's to stop")
        print(stop_embedded(settings))
        return 0
    url = _warehouse(settings)
    if args.action == "roles":
        import psycopg

        from .roles import RolesError, create_roles

        try:
            with psycopg.connect(url) as conn:
                print(create_roles(conn, args.prefix))
        except RolesError as exc:
            raise CliError(str(exc)) from None
        except psycopg.errors.InsufficientPrivilege as exc:
            raise CliError(
                f"warehouse roles: {str(exc).strip().splitlines()[0]}; run it as a superuser (or a role with "
                "CREATEROLE that owns the pipeline's schemas), e.g. REFERRAL_WAREHOUSE_URL=postgresql://postgres@..."
            ) from None
        return 0
    print(f"warehouse: {_redact(url)}\nconnect:   {psql_command(url)}")
    return 0


def _tool(name: str) -> str:
    """A console script installed beside this interpreter (dbt, dagster)."""
    path = Path(sys.executable).with_name(name)
    if not path.is_file():
        raise CliError(f"{name} is not installed beside {sys.executable}: reinstall referral-pipeline")
    return str(path)


def cmd_dbt(args: argparse.Namespace) -> int:
    from orchestration.dbt_project import dbt_run_env

    from .dbt_cli import dbt_env

    settings = _settings()
    url = _warehouse(settings)
    extra = [a for a in args.dbt_args if a != "--"]
    settings.dbt_target_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **dbt_env(url), **dbt_run_env(settings.dbt_target_dir)}
    project = ["--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
    return subprocess.call([_tool("dbt"), *extra, *project], cwd=settings.dbt_target_dir, env=env)


def cmd_ui(args: argparse.Namespace) -> int:
    settings = _settings()
    home = _dagster_home(settings)
    print(f"Dagster UI on http://{args.host}:{args.port} (instance {home}); Ctrl-C stops it", flush=True)
    command = [
        _tool("dagster"),
        "dev",
        "-m",
        "orchestration.definitions",
        "-h",
        args.host,
        "-p",
        str(args.port),
    ]
    try:
        env = {
            **os.environ,
            "PYTHONWARNINGS": "ignore",
        }  # library warnings are not for the people using the UI
        return subprocess.call(
            command, cwd=settings.data_dir if settings.data_dir.is_dir() else None, env=env
        )
    except KeyboardInterrupt:
        return 0


# --- parser ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="referral-pipeline",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help: str, func, **kw) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=help, description=help, epilog=EPILOG, **kw)
        parser.set_defaults(func=func)
        return parser

    verbose = {
        "action": "store_true",
        "help": "stream the full log (Dagster and dbt) instead of progress lines",
    }

    r = add(
        "run",
        "run the nightly job for one day: load landing partition dt=DATE, rules, dbt build, payouts",
        cmd_run,
    )
    r.add_argument("--date", type=_date, required=True, metavar="YYYY-MM-DD", help="the day to load (UTC)")
    r.add_argument("--verbose", **verbose)

    b = add(
        "backfill", "run the nightly job over a range of days as one run (same result as day by day)", cmd_run
    )
    b.add_argument("--start", dest="date", type=_date, required=True, metavar="YYYY-MM-DD", help="first day")
    b.add_argument("--end", type=_date, required=True, metavar="YYYY-MM-DD", help="last day (inclusive)")
    b.add_argument("--verbose", **verbose)

    au = add(
        "audit",
        "run the full-history dbt data tests that the nightly leaves out (the data_audit job; reads only)",
        cmd_audit,
    )
    au.add_argument("--verbose", **verbose)

    g = add("generate", "write realistic, seeded sample exports in the landing layout", cmd_generate)
    g.add_argument("--out", required=True, type=_nonblank, metavar="DIR", help="landing root to write into")
    g.add_argument("--start", type=_date, required=True, metavar="YYYY-MM-DD", help="first day")
    g.add_argument("--days", type=_positive, required=True, metavar="N", help="number of days (at least 1)")
    g.add_argument("--scale", default="small", choices=["small", "medium", "large"], help="data volume")
    g.add_argument("--seed", type=int, default=7, help="random seed: the same seed writes the same files")

    d = add(
        "demo",
        "sample exports -> nightly runs -> published payout batches, on the embedded warehouse in the data folder "
        "(replaces the previous demo's data there)",
        cmd_demo,
    )
    d.add_argument(
        "--start",
        type=_date,
        default=dt.date(2025, 1, 1),
        metavar="YYYY-MM-DD",
        help="first day (default 2025-01-01)",
    )
    d.add_argument("--days", type=_positive, default=60, metavar="N", help="number of days (default 60)")
    d.add_argument("--scale", default="small", choices=["small", "medium", "large"], help="data volume")
    d.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    d.add_argument(
        "--force", action="store_true", help="replace a data folder that holds data not made by the demo"
    )

    a = add("approve", "release a reward event from every hold (audited)", cmd_approve)
    a.add_argument(
        "event_id", metavar="EVENT_ID", help="event id, as in marts.fct_reward_events or `review list`"
    )
    audited(a, "who approves")

    ds = add(
        "dispute",
        "open or resolve a dispute on a deal or a referral (holds its rewards while open)",
        cmd_dispute,
    )
    ds.add_argument("action", choices=["open", "resolve"], help="open a dispute, or resolve the open one")
    who = ds.add_mutually_exclusive_group(required=True)
    who.add_argument("--deal", metavar="DEAL_ID", help="the disputed deal")
    who.add_argument("--referral", metavar="REFERRAL_ID", help="the disputed referral")
    audited(ds, "who acts")

    o = add(
        "override",
        "set the payout attribution of a deal by hand (audited; applies from the next run)",
        cmd_override,
    )
    o.add_argument("deal_id", metavar="DEAL_ID", help="the deal")
    o.add_argument(
        "--credit", action="append", default=[], metavar="PARTNER_ID=SHARE",
        help="a partner's share; repeat for each partner; shares sum to 1",
    )  # fmt: skip
    audited(o, "who overrides")

    pay = sub.add_parser(
        "payouts", help="finance views of payout batches", description="finance views of payout batches"
    )
    paysub = pay.add_subparsers(dest="payouts_command", required=True, metavar="ACTION")
    show = paysub.add_parser(
        "show",
        help="summarise a batch from the ledger and verify its published files against their checksums",
    )
    show.add_argument("--period", required=True, type=_period, metavar="YYYY-MM", help="the payout period")
    show.set_defaults(func=cmd_payouts_show)

    add(
        "status",
        "what the pipeline has done: last loaded partition per entity, last dbt build, batches, open review items",
        cmd_status,
    )

    w = add(
        "warehouse",
        "print the warehouse URL and psql command (starting the embedded server), stop it, or create the "
        "least-privilege group roles",
        cmd_warehouse,
    )
    w.add_argument(
        "action",
        nargs="?",
        default="info",
        choices=["info", "stop", "roles"],
        help="info (default), stop, or roles: create the NOLOGIN group roles PREFIX_loader, _transformer, "
        "_payouts, _finance, _analyst and their privileges (idempotent; run as a superuser; see "
        "docs/operations.md, Least-privilege roles)",
    )
    w.add_argument(
        "--prefix",
        default="referral",
        metavar="NAME",
        help="roles: the group roles' name prefix (default referral: referral_loader, ...)",
    )

    u = add(
        "ui",
        "open the Dagster UI on this pipeline's instance (the runs of `run`, `backfill` and `demo`)",
        cmd_ui,
    )
    u.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    u.add_argument("--port", type=_positive, default=3000, help="port (default 3000)")

    t = add(
        "dbt",
        "run dbt against the configured warehouse, e.g. `referral-pipeline dbt -- docs generate`",
        cmd_dbt,
    )
    t.add_argument(
        "dbt_args", nargs=argparse.REMAINDER, metavar="-- DBT_ARGS", help="arguments passed to dbt"
    )

    from . import cli_batches, cli_controls, cli_report, cli_simulate, cli_statements

    cli_controls.add_override_withdraw(o, _with_connection)
    for module in (cli_controls, cli_statements, cli_report, cli_simulate, cli_batches):
        module.add_commands(sub, _with_connection)
    return p


# --- entry point ----------------------------------------------------------------------------------------


def _known_errors() -> tuple[type[BaseException], ...]:
    from orchestration.run import RunFailed

    from .controls import ControlError
    from .landing import LandingError
    from .rules import RulesError

    return (CliError, ConfigError, ControlError, LandingError, RulesError, RunFailed)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.filterwarnings(
        "ignore"
    )  # third-party warnings are for developers, not for the people running this
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to finish (reruns are idempotent)", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`... | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except _known_errors() as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        print(f"error: {' / '.join(lines)}", file=sys.stderr)  # always one line
        return 1
    except Exception as exc:  # a bug: one line here, the traceback in a file
        log = _settings().log_dir / "errors.log"
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "a", encoding="utf-8") as f:
                f.write(f"--- {dt.datetime.now(dt.UTC).isoformat()} {sys.argv}\n{traceback.format_exc()}\n")
            where = f"traceback in {log}"
        except OSError:
            where = "no traceback written"
        print(f"error: unexpected {type(exc).__name__}: {exc} ({where}); please report it", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
