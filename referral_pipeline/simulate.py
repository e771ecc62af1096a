"""What-if simulation of a rule change (see docs/simulate.md): "what would these months have paid under the
proposed rules?", answered without touching the marts, the ledger, the controls or the exports.

How: the proposed rules file is validated (referral_pipeline.rules) and written by the pipeline's own loader
(`rules.write_rules`) into a scratch rules schema `sim_<id>_rules`; the dbt project then builds the models
behind fct_reward_entitlements, fct_attribution and int_tiers__partner_months into scratch schemas
(`sim_<id>_staging`, `sim_<id>_intermediate`, `sim_<id>_marts`: the macro generate_schema_name prefixes every
schema with REFERRAL_DBT_SCHEMA_PREFIX, the rules source reads REFERRAL_DBT_RULES_SCHEMA), as of the run date
of the last nightly build, reading the real raw and controls tables. The scratch results are compared with the
real marts (what the last nightly computed), written as CSV files and an HTML page, and the scratch schemas
are dropped, also when the build fails or the command is interrupted.

The small pure functions (names, dbt arguments and environment, progress lines, month ranges) are unit-tested
like referral_pipeline.dbt_cli's."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import html
import io
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import psycopg

from .config import DBT_PROJECT_DIR, Settings
from .console import Reporter, Silent
from .rules import ProgramRules, load_rules, write_rules

# Everything the payout input, the tiers and the attribution mart are computed from (models only: the data tests
# are the nightly's job; a simulation's numbers are never paid).
SELECT = ("+fct_reward_entitlements", "+fct_attribution", "+int_tiers__partner_months")
PREFIX_ENV = "REFERRAL_DBT_SCHEMA_PREFIX"
RULES_SCHEMA_ENV = "REFERRAL_DBT_RULES_SCHEMA"
RULES_TABLES = ("program", "versions", "tiers", "free_mail_domains")
SCRATCH_RE = re.compile(r"^(sim_\d{14}_[0-9a-f]{6}_)")
# Advisory-lock class of a running simulation (the second key is hashtext(prefix)): a scratch schema whose
# lock nobody holds belongs to a simulation that was killed before it could clean up.
LOCK_CLASS = 0x51D
REQUIRED = (
    "marts.fct_reward_entitlements",
    "marts.fct_attribution",
    "marts.dim_partners",
    "intermediate.int_tiers__partner_months",
    "intermediate.int_deals__enriched",
)
DBT_LABEL = "dbt run (proposed rules)"


class SimulationError(Exception):
    """The simulation cannot run or failed; the message is one line that says what to do."""


# --- pure helpers ---------------------------------------------------------------------------------------------


def parse_month(text: str) -> dt.date:
    """YYYY-MM -> the first day of that month; ValueError otherwise."""
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", text or ""):
        raise ValueError(f"expected a month YYYY-MM, got {text!r}")
    return dt.date(int(text[:4]), int(text[5:7]), 1)


def month_range(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every month from `first` to `last` inclusive (first days of months); refuses first after last."""
    if first > last:
        raise SimulationError(
            f"--from {first:%Y-%m} is after --to {last:%Y-%m}: give the earlier month first"
        )
    months, m = [], first
    while m <= last:
        months.append(m)
        m = dt.date(m.year + (m.month == 12), m.month % 12 + 1, 1)
    return months


def scratch_prefix(now: dt.datetime, token: str) -> str:
    """The scratch schema prefix of one simulation: sim_<UTC timestamp>_<6 hex>_ (lower case, < 30 chars, so
    that `<prefix>intermediate` stays well within PostgreSQL's 63-character names)."""
    if not re.fullmatch(r"[0-9a-f]{6}", token):
        raise ValueError(f"token must be 6 lowercase hex digits, got {token!r}")
    return f"sim_{now.astimezone(dt.UTC):%Y%m%d%H%M%S}_{token}_"


def simulation_id(prefix: str) -> str:
    """The folder name of a simulation's output: its prefix without `sim_` and the trailing underscore."""
    return prefix.removeprefix("sim_").rstrip("_")


def dbt_run_args(project_dir: Path = DBT_PROJECT_DIR) -> list[str]:
    """`dbt run` of the models behind the payout input, the tiers and attribution (unit tests excluded)."""
    return [
        "--no-use-colors",
        "run",
        "--select",
        *SELECT,
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(project_dir),
    ]


def scratch_env(prefix: str) -> dict[str, str]:
    """The two variables that point the dbt project at the scratch schemas (read by generate_schema_name and
    by the rules source); raw and controls sources stay the real ones, read only."""
    return {PREFIX_ENV: prefix, RULES_SCHEMA_ENV: f"{prefix}rules"}


_PROGRESS = re.compile(r"\b(\d+) of (\d+) (START|OK|ERROR|SKIP|PASS|FAIL|WARN)\b\s*(.*)")


def parse_progress(line: str) -> tuple[int, int, str, str] | None:
    """A dbt log line `... 3 of 37 OK created sql view model sim_x_staging.stg_a ...` -> (3, 37, 'OK', rest);
    None for any other line."""
    m = _PROGRESS.search(line)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), m.group(3), m.group(4).strip()


_ERROR_IN = re.compile(r"\b(?:Database|Compilation|Runtime) Error in (?:model|test) (\S+)")


def failure_detail(lines: list[str]) -> str | None:
    """`model X: <the database's message>` from dbt's summary of failures, or None."""
    for i, line in enumerate(lines):
        m = _ERROR_IN.search(line)
        if m:
            message = next((t.strip() for t in lines[i + 1 :] if t.strip()), "")
            return f"model {m.group(1)}: {message}".rstrip(": ")
    return None


def redirect_schema(sql: str, schema: str) -> str:
    """`rules.<table>` -> `<schema>.<table>` in a statement of rules.write_rules."""
    return re.sub(r"\brules\.", f"{schema}.", sql)


# --- the scratch rules schema ------------------------------------------------------------------------------------


class _RedirectCursor:
    def __init__(self, cursor, schema: str):
        self._cursor, self._schema = cursor, schema

    def copy(self, statement, *args, **kw):
        return self._cursor.copy(redirect_schema(statement, self._schema), *args, **kw)

    def execute(self, statement, *args, **kw):
        return self._cursor.execute(redirect_schema(statement, self._schema), *args, **kw)


class _RedirectConnection:
    """A connection whose statements name `<schema>.<table>` wherever rules.write_rules says `rules.<table>`:
    the proposed file is written by the pipeline's own loader, into the scratch schema only."""

    def __init__(self, conn: psycopg.Connection, schema: str):
        self._conn, self._schema = conn, schema

    def transaction(self):
        return self._conn.transaction()

    def execute(self, statement, *args, **kw):
        return self._conn.execute(redirect_schema(statement, self._schema), *args, **kw)

    def cursor(self, *args, **kw):
        return _RedirectCursor(self._conn.cursor(*args, **kw), self._schema)


def load_scratch_rules(conn: psycopg.Connection, rules: ProgramRules, schema: str) -> None:
    """Create `<schema>` with empty copies of the rules tables and write `rules` into them."""
    try:
        conn.execute(f'create schema "{schema}"')
    except psycopg.errors.InsufficientPrivilege:
        user, db = conn.execute("select session_user, current_database()").fetchone()
        raise SimulationError(
            f"role {user} may not create schemas in database {db}, and a simulation builds in scratch schemas: "
            f"run it as the warehouse's owner or `grant create on database {db} to {user}` (see docs/simulate.md)"
        ) from None
    for t in RULES_TABLES:
        conn.execute(f'create table "{schema}".{t} (like rules.{t} including all)')
    write_rules(_RedirectConnection(conn, schema), rules)  # type: ignore[arg-type]


# --- cleanup -------------------------------------------------------------------------------------------------------


def scratch_schemas(conn: psycopg.Connection, prefix: str | None = None) -> list[str]:
    """Scratch schemas in the warehouse (of one simulation when `prefix` is given)."""
    rows = conn.execute(
        r"select nspname from pg_namespace where nspname ~ '^sim_[0-9]{14}_[0-9a-f]{6}_' order by nspname"
    ).fetchall()
    return [r[0] for r in rows if prefix is None or r[0].startswith(prefix)]


def drop_scratch(url: str, prefix: str) -> None:
    """Drop every schema of this simulation. A dbt session killed mid-statement may still hold a lock for a
    moment: wait up to 10 s per try, then end the sessions that hold locks on the scratch relations."""
    with psycopg.connect(url, autocommit=True) as conn:
        for attempt in range(3):
            schemas = scratch_schemas(conn, prefix)
            if not schemas:
                return
            try:
                conn.execute("set lock_timeout = '10s'")
                for s in schemas:
                    conn.execute(f'drop schema if exists "{s}" cascade')
                return
            except psycopg.errors.LockNotAvailable:
                if attempt == 2:
                    raise
                conn.execute(
                    """
                    select pg_terminate_backend(l.pid)
                    from pg_locks as l
                    join pg_class as c on c.oid = l.relation
                    join pg_namespace as n on n.oid = c.relnamespace
                    where n.nspname like %s and l.pid <> pg_backend_pid()
                    """,
                    (prefix.replace("_", r"\_") + "%",),
                )


def remove_stale_scratch(conn: psycopg.Connection, log: Callable[[str], None]) -> list[str]:
    """Drop the scratch schemas of simulations that are no longer running (killed before they could clean up:
    nobody holds their advisory lock). Returns the schemas dropped."""
    dropped: list[str] = []
    prefixes = sorted({m.group(1) for s in scratch_schemas(conn) if (m := SCRATCH_RE.match(s))})
    for prefix in prefixes:
        got = conn.execute("select pg_try_advisory_lock(%s, hashtext(%s))", (LOCK_CLASS, prefix)).fetchone()[
            0
        ]
        if not got:
            continue  # a simulation still running
        try:
            for s in scratch_schemas(conn, prefix):
                conn.execute(f'drop schema if exists "{s}" cascade')
                dropped.append(s)
        finally:
            conn.execute("select pg_advisory_unlock(%s, hashtext(%s))", (LOCK_CLASS, prefix))
    if dropped:
        log(f"  removed the scratch schemas of an interrupted simulation: {', '.join(dropped)}")
    return dropped


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (e.g. a scheduler stopping the command) cleans up like Ctrl-C does."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- running dbt ------------------------------------------------------------------------------------------------


def run_dbt(env: dict[str, str], target_dir: Path, report: Reporter) -> None:
    """Run `dbt run` of SELECT with `env`; progress on `report`; a failure raises SimulationError naming the
    first failed model and the log file. An interrupt stops dbt before it propagates."""
    from orchestration.dbt_project import dbt_executable

    log_file = target_dir / "dbt-output.log"
    tail: deque[str] = deque(maxlen=400)
    errors: list[str] = []
    total = 0
    proc = subprocess.Popen(
        [dbt_executable(), *dbt_run_args()],
        cwd=target_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a Ctrl-C reaches this process only; it stops dbt itself, then cleans up
    )
    try:
        with open(log_file, "w", encoding="utf-8") as log:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                tail.append(line.rstrip())
                progress = parse_progress(line)
                if progress is None:
                    continue
                done, total, status, rest = progress
                if status == "START":
                    continue
                report.advance(DBT_LABEL, done, total)
                if status == "ERROR":
                    errors.append(rest)
        code = proc.wait()
    except BaseException:
        _stop(proc)
        raise
    finally:
        report.finish(DBT_LABEL)
    if code != 0:
        detail = failure_detail(list(tail)) or (errors[0] if errors else None)
        detail = detail or next((t for t in reversed(tail) if t.strip()), "no output")
        raise SimulationError(
            f"dbt could not build the proposed rules' models ({detail.strip()}); nothing was changed; "
            f"the full dbt output is in {log_file}"
        )
    report.line(f"  dbt built {total} models in scratch schemas")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# --- comparison ----------------------------------------------------------------------------------------------------


def _rows(conn: psycopg.Connection, query: str, params=()) -> list[dict]:
    cur = conn.execute(query, params)
    names = [c.name for c in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _month(ts: str) -> str:
    return f"date_trunc('month', {ts} at time zone 'UTC')::date"


@dataclass
class Comparison:
    months: list[dt.date]
    events: list[dict]
    partner_months: list[dict]
    programme: list[dict]
    tier_changes: list[dict]
    attribution: list[dict]
    attribution_models: list[dict]
    currency: str


def compare(conn: psycopg.Connection, prefix: str, months: list[dt.date], currency: str) -> Comparison:
    """Now (the real marts) against proposed (the scratch marts), restricted to `months`."""
    first, last = months[0], months[-1]
    p_marts, p_int = f'"{prefix}marts"', f'"{prefix}intermediate"'
    window = {"first": first, "last": last}
    # Every reward event paid in the window on either side, with its month on each side: a changed hold can
    # move an event to another month.
    events = _rows(
        conn,
        f"""
        select
            coalesce(n.event_id, p.event_id) as event_id,
            coalesce(n.event_type, p.event_type) as event_type,
            coalesce(n.partner_id, p.partner_id) as partner_id,
            coalesce(n.deal_id, p.deal_id) as deal_id,
            coalesce(n.referral_id, p.referral_id) as referral_id,
            {_month("n.payable_at")} as month_now,
            {_month("p.payable_at")} as month_proposed,
            n.tier as tier_now,
            p.tier as tier_proposed,
            n.commission_rate as commission_rate_now,
            p.commission_rate as commission_rate_proposed,
            n.commission_base as commission_base_now,
            p.commission_base as commission_base_proposed,
            n.payout_credit as payout_credit_now,
            p.payout_credit as payout_credit_proposed,
            n.commission_cap_per_deal as commission_cap_now,
            p.commission_cap_per_deal as commission_cap_proposed,
            n.amount as amount_now,
            p.amount as amount_proposed
        from marts.fct_reward_entitlements as n
        full join {p_marts}.fct_reward_entitlements as p on p.event_id = n.event_id
        where {_month("n.payable_at")} between %(first)s and %(last)s
           or {_month("p.payable_at")} between %(first)s and %(last)s
        order by 3, 1
        """,
        window,
    )
    for e in events:
        e["delta"] = (e["amount_proposed"] or Decimal(0)) - (e["amount_now"] or Decimal(0))

    tiers = _rows(
        conn,
        f"""
        with n as (
            select partner_id, tier_month, string_agg(distinct tier_name, '+' order by tier_name) as tier,
                   sum(trailing_revenue) as trailing_revenue
            from intermediate.int_tiers__partner_months
            where tier_month between %(first)s and %(last)s group by 1, 2
        ),
        p as (
            select partner_id, tier_month, string_agg(distinct tier_name, '+' order by tier_name) as tier,
                   sum(trailing_revenue) as trailing_revenue
            from {p_int}.int_tiers__partner_months
            where tier_month between %(first)s and %(last)s group by 1, 2
        )
        select coalesce(n.partner_id, p.partner_id) as partner_id, coalesce(n.tier_month, p.tier_month) as month,
               n.tier as tier_now, p.tier as tier_proposed,
               n.trailing_revenue as trailing_revenue_now, p.trailing_revenue as trailing_revenue_proposed
        from n full join p on p.partner_id = n.partner_id and p.tier_month = n.tier_month
        order by 1, 2
        """,
        window,
    )
    # A tier computed on both sides that differs (a month with a tier on one side only is a month in which the
    # partner earned nothing on the other side: its events show in the events, not as a tier change).
    tier_changes = [
        t
        for t in tiers
        if None not in (t["tier_now"], t["tier_proposed"]) and t["tier_now"] != t["tier_proposed"]
    ]

    # Per partner and month: what each side pays in that month (events by their month on that side), and the
    # tiers of those events (an event's tier is its partner's tier in the month it was earned).
    sums: dict[tuple[str, dt.date], list] = {}
    for e in events:
        for side, month_key, amount_key, tier_key in (
            (0, "month_now", "amount_now", "tier_now"),
            (1, "month_proposed", "amount_proposed", "tier_proposed"),
        ):
            m = e[month_key]
            if _in(m, first, last):
                acc = sums.setdefault((e["partner_id"], m), [Decimal(0), Decimal(0), set(), set(), False])
                acc[side] += e[amount_key]
                acc[2 + side].add(e[tier_key])
                acc[4] = (
                    acc[4]
                    or None not in (e["tier_now"], e["tier_proposed"])
                    and e["tier_now"] != e["tier_proposed"]
                )
    partner_months = []
    for (partner, m), (now, proposed, tiers_now, tiers_proposed, changed) in sorted(sums.items()):
        partner_months.append(
            {
                "partner_id": partner,
                "month": m,
                "entitlement_now": now,
                "entitlement_proposed": proposed,
                "delta": proposed - now,
                "tier_now": "+".join(sorted(tiers_now)) or None,
                "tier_proposed": "+".join(sorted(tiers_proposed)) or None,
                "tier_changed": changed,
            }
        )
    programme = []
    for m in months:
        rows = [r for r in partner_months if r["month"] == m]
        now = sum((r["entitlement_now"] for r in rows), Decimal(0))
        proposed = sum((r["entitlement_proposed"] for r in rows), Decimal(0))
        programme.append(
            {
                "month": m,
                "entitlement_now": now,
                "entitlement_proposed": proposed,
                "delta": proposed - now,
                "partners_changed": sum(1 for r in rows if r["delta"] != 0),
                "tier_changes": sum(1 for t in tier_changes if t["month"] == m),
            }
        )

    # Attribution shift: attributed revenue of the won deals closed in the window, per model and partner.
    attribution = _rows(
        conn,
        f"""
        with n as (
            select a.model, a.partner_id, sum(a.attributed_revenue) as revenue, sum(a.credit) as credit
            from marts.fct_attribution as a
            join intermediate.int_deals__enriched as d on d.deal_id = a.deal_id
            where a.is_won and {_month("d.closed_at")} between %(first)s and %(last)s
            group by 1, 2
        ),
        p as (
            select a.model, a.partner_id, sum(a.attributed_revenue) as revenue, sum(a.credit) as credit
            from {p_marts}.fct_attribution as a
            join {p_int}.int_deals__enriched as d on d.deal_id = a.deal_id
            where a.is_won and {_month("d.closed_at")} between %(first)s and %(last)s
            group by 1, 2
        )
        select coalesce(n.model, p.model) as model, coalesce(n.partner_id, p.partner_id) as partner_id,
               coalesce(n.revenue, 0) as attributed_revenue_now,
               coalesce(p.revenue, 0) as attributed_revenue_proposed,
               coalesce(p.revenue, 0) - coalesce(n.revenue, 0) as delta,
               coalesce(n.credit, 0) as deal_credit_now,
               coalesce(p.credit, 0) as deal_credit_proposed
        from n full join p on p.model = n.model and p.partner_id = n.partner_id
        order by 1, 2
        """,
        window,
    )
    models = []
    for model in sorted({a["model"] for a in attribution}, key=_model_order):
        rows = [a for a in attribution if a["model"] == model]
        models.append(
            {
                "model": model,
                "attributed_revenue_now": sum((a["attributed_revenue_now"] for a in rows), Decimal(0)),
                "attributed_revenue_proposed": sum(
                    (a["attributed_revenue_proposed"] for a in rows), Decimal(0)
                ),
                # Revenue that moved between partners: the sum of the gains (equal to the losses when the
                # total stays the same).
                "shifted": sum((a["delta"] for a in rows if a["delta"] > 0), Decimal(0)),
                "partners_changed": sum(1 for a in rows if a["delta"] != 0),
            }
        )
    return Comparison(
        months=months,
        events=events,
        partner_months=partner_months,
        programme=programme,
        tier_changes=tier_changes,
        attribution=attribution,
        attribution_models=models,
        currency=currency,
    )


_MODEL_ORDER = ("payout", "first_touch", "last_touch", "linear", "time_decay", "position_based")


def _model_order(model: str) -> tuple[int, str]:
    return (_MODEL_ORDER.index(model) if model in _MODEL_ORDER else len(_MODEL_ORDER), model)


def _in(month: dt.date | None, first: dt.date, last: dt.date) -> bool:
    return month is not None and first <= month <= last


# --- output ----------------------------------------------------------------------------------------------------------

CENT = Decimal("0.01")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.strftime("%Y-%m") if value.day == 1 else value.isoformat()
    if isinstance(value, Decimal):
        return _plain_decimal(value)
    return str(value)


def _plain_decimal(value: Decimal) -> str:
    """A Decimal in plain notation, exactly as computed (trailing zeros past the cent trimmed, never below)."""
    text = format(value, "f")
    if "." in text:
        whole, frac = text.split(".")
        frac = frac.rstrip("0").ljust(2, "0")
        text = f"{whole}.{frac}"
    else:
        text = f"{text}.00"
    return "0.00" if text in ("-0.00",) else text


def _csv(rows: list[dict], columns: list[str]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in columns])
    return buf.getvalue().encode("utf-8")


EVENT_COLUMNS = [
    "event_id",
    "event_type",
    "partner_id",
    "deal_id",
    "referral_id",
    "month_now",
    "month_proposed",
    "tier_now",
    "tier_proposed",
    "commission_rate_now",
    "commission_rate_proposed",
    "commission_base_now",
    "commission_base_proposed",
    "payout_credit_now",
    "payout_credit_proposed",
    "commission_cap_now",
    "commission_cap_proposed",
    "amount_now",
    "amount_proposed",
    "delta",
]
PARTNER_MONTH_COLUMNS = [
    "partner_id",
    "month",
    "entitlement_now",
    "entitlement_proposed",
    "delta",
    "tier_now",
    "tier_proposed",
    "tier_changed",
]
PROGRAMME_COLUMNS = [
    "month",
    "entitlement_now",
    "entitlement_proposed",
    "delta",
    "partners_changed",
    "tier_changes",
]
TIER_COLUMNS = [
    "partner_id",
    "month",
    "tier_now",
    "tier_proposed",
    "trailing_revenue_now",
    "trailing_revenue_proposed",
]
ATTRIBUTION_COLUMNS = [
    "model",
    "partner_id",
    "attributed_revenue_now",
    "attributed_revenue_proposed",
    "delta",
    "deal_credit_now",
    "deal_credit_proposed",
]
ATTRIBUTION_MODEL_COLUMNS = [
    "model",
    "attributed_revenue_now",
    "attributed_revenue_proposed",
    "shifted",
    "partners_changed",
]


def programme_total(c: Comparison) -> dict:
    now = sum((r["entitlement_now"] for r in c.programme), Decimal(0))
    proposed = sum((r["entitlement_proposed"] for r in c.programme), Decimal(0))
    return {
        "month": "total",
        "entitlement_now": now,
        "entitlement_proposed": proposed,
        "delta": proposed - now,
        "partners_changed": len({r["partner_id"] for r in c.partner_months if r["delta"] != 0}),
        "tier_changes": len(c.tier_changes),
    }


def csv_files(c: Comparison) -> dict[str, bytes]:
    return {
        "partner_months.csv": _csv(c.partner_months, PARTNER_MONTH_COLUMNS),
        "programme.csv": _csv([*c.programme, programme_total(c)], PROGRAMME_COLUMNS),
        "events.csv": _csv(c.events, EVENT_COLUMNS),
        "tier_changes.csv": _csv(c.tier_changes, TIER_COLUMNS),
        "attribution_shift.csv": _csv(c.attribution, ATTRIBUTION_COLUMNS),
        "attribution_models.csv": _csv(c.attribution_models, ATTRIBUTION_MODEL_COLUMNS),
    }


def money(value) -> str:
    from .report import money as report_money

    return report_money(value)


def signed(value: Decimal) -> str:
    text = money(value)
    return f"+{text}" if value > 0 else text


def summary_lines(c: Comparison, meta: dict) -> list[str]:
    """The summary printed by the command (also at the top of the HTML page)."""

    def table(rows: list[list[str]], right: set[int]) -> list[str]:
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return [
            "  "
            + "  ".join(
                (cell.rjust(w) if i in right else cell.ljust(w))
                for i, (cell, w) in enumerate(zip(r, widths, strict=True))
            ).rstrip()
            for r in rows
        ]

    total = programme_total(c)
    lines = [
        f"simulation of {meta['rules_file']} over {meta['from']} to {meta['to']} "
        f"(as of the nightly run of {meta['run_date']}; amounts in {c.currency})",
        *meta.get("notes", []),
        "programme:",
    ]
    rows = [["MONTH", "NOW", "PROPOSED", "DELTA", "PARTNERS CHANGED", "TIER CHANGES"]]
    for r in [*c.programme, total]:
        rows.append(
            [
                _cell(r["month"]),
                money(r["entitlement_now"]),
                money(r["entitlement_proposed"]),
                signed(r["delta"]),
                str(r["partners_changed"]),
                str(r["tier_changes"]),
            ]
        )
    lines += table(rows, {1, 2, 3, 4, 5})
    changed = [r for r in c.partner_months if r["delta"] != 0 or r["tier_changed"]]
    if changed:
        lines.append(f"partners and months that change ({len(changed)} of {len(c.partner_months)}):")
        rows = [["PARTNER", "MONTH", "NOW", "PROPOSED", "DELTA", "TIER NOW", "TIER PROPOSED"]]
        for r in changed:
            rows.append(
                [
                    r["partner_id"],
                    _cell(r["month"]),
                    money(r["entitlement_now"]),
                    money(r["entitlement_proposed"]),
                    signed(r["delta"]),
                    r["tier_now"] or "-",
                    r["tier_proposed"] or "-",
                ]
            )
        lines += table(rows, {2, 3, 4})
    else:
        lines.append(
            f"no partner's entitlement or tier changes in these months ({len(c.partner_months)} partner-months)"
        )
    lines.append("attribution shift (won deals closed in these months):")
    rows = [["MODEL", "REVENUE NOW", "REVENUE PROPOSED", "MOVED BETWEEN PARTNERS", "PARTNERS CHANGED"]]
    for m in c.attribution_models:
        rows.append(
            [
                m["model"],
                money(m["attributed_revenue_now"]),
                money(m["attributed_revenue_proposed"]),
                money(m["shifted"]),
                str(m["partners_changed"]),
            ]
        )
    if len(rows) == 1:
        lines.append("  no won deal closed in these months")
    else:
        lines += table(rows, {1, 2, 3, 4})
    return lines


def render_chart_svg(c: Comparison) -> str:
    """Programme entitlement per month (now vs proposed) and the delta per partner over the window, as inline
    SVG drawn with the program report's fixed settings (same data, same bytes)."""
    import matplotlib

    from .report import MONEY_AXIS, RC_PARAMS, _grouped_bars, _num, _pyplot

    plt = _pyplot()
    with matplotlib.rc_context({**RC_PARAMS, "svg.hashsalt": "simulation"}):
        fig, axes = plt.subplots(1, 2, figsize=(13, 4), layout="constrained")
        labels = [m.strftime("%Y-%m") for m in c.months]
        _grouped_bars(
            axes[0],
            labels,
            {
                "now": [_num(r["entitlement_now"]) for r in c.programme],
                "proposed": [_num(r["entitlement_proposed"]) for r in c.programme],
            },
        )
        axes[0].set_title(f"Programme entitlement per month, {c.currency}")
        axes[0].yaxis.set_major_formatter(MONEY_AXIS)
        axes[0].legend(fontsize=8)
        per_partner: dict[str, Decimal] = {}
        for r in c.partner_months:
            per_partner[r["partner_id"]] = per_partner.get(r["partner_id"], Decimal(0)) + r["delta"]
        partners = sorted(per_partner)
        values = [_num(per_partner[p]) for p in partners]
        axes[1].barh(
            range(len(partners)),
            values,
            color=["#2a7d2a" if v >= 0 else "#b03030" for v in values],
        )
        axes[1].set_yticks(range(len(partners)), partners)
        axes[1].invert_yaxis()
        axes[1].axvline(0, color="#444444", linewidth=0.8)
        axes[1].xaxis.set_major_formatter(MONEY_AXIS)
        axes[1].set_title(f"Delta per partner over the months, {c.currency}")
        svg = io.StringIO()
        fig.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
        plt.close(fig)
    text = svg.getvalue()
    return re.sub(r"\s*<metadata>.*?</metadata>", "", text[text.index("<svg") :], flags=re.S)


def render_html(c: Comparison, meta: dict, chart_svg: str) -> str:
    from .report import CSS, _table

    total = programme_total(c)
    head = (
        f"Proposed rules {html.escape(meta['rules_file'])} (sha256 {html.escape(meta['rules_sha256'][:12])}) "
        f"against the rules of the last nightly run ({html.escape(str(meta['run_date']))}), months "
        f"{html.escape(meta['from'])} to {html.escape(meta['to'])}. Amounts in {html.escape(c.currency)}, to the "
        "cent; entitlement = reward events payable in the month (payable_at, UTC). Nothing here is paid: this "
        "is a what-if."
    )
    programme = _table(
        ["Month", "Now", "Proposed", "Delta", "Partners changed", "Tier changes"],
        [
            [
                _cell(r["month"]),
                money(r["entitlement_now"]),
                money(r["entitlement_proposed"]),
                signed(r["delta"]),
                r["partners_changed"],
                r["tier_changes"],
            ]
            for r in [*c.programme, total]
        ],
        numeric=[False, True, True, True, True, True],
        cls="programme",
    )
    partners = _table(
        ["Partner", "Month", "Now", "Proposed", "Delta", "Tier now", "Tier proposed"],
        [
            [
                r["partner_id"],
                _cell(r["month"]),
                money(r["entitlement_now"]),
                money(r["entitlement_proposed"]),
                signed(r["delta"]),
                r["tier_now"] or "",
                r["tier_proposed"] or "",
            ]
            for r in c.partner_months
        ],
        numeric=[False, False, True, True, True],
        cls="partner-months",
    )
    tiers = _table(
        [
            "Partner",
            "Month",
            "Tier now",
            "Tier proposed",
            "Trailing revenue now",
            "Trailing revenue proposed",
        ],
        [
            [
                t["partner_id"],
                _cell(t["month"]),
                t["tier_now"] or "",
                t["tier_proposed"] or "",
                money(t["trailing_revenue_now"]),
                money(t["trailing_revenue_proposed"]),
            ]
            for t in c.tier_changes
        ],
        numeric=[False, False, False, False, True, True],
        cls="tier-changes",
    )
    models = _table(
        ["Model", "Attributed revenue now", "Proposed", "Moved between partners", "Partners changed"],
        [
            [
                m["model"],
                money(m["attributed_revenue_now"]),
                money(m["attributed_revenue_proposed"]),
                money(m["shifted"]),
                m["partners_changed"],
            ]
            for m in c.attribution_models
        ],
        numeric=[False, True, True, True, True],
        cls="attribution-models",
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>Rule-change simulation {html.escape(meta['from'])} to {html.escape(meta['to'])}</title>"
        f"<style>{CSS}</style></head><body>"
        "<h1>What if: the proposed rules over past months</h1>"
        f'<p id="scope">{head}</p>'
        + "".join(f'<p class="note">{html.escape(n)}</p>' for n in meta.get("notes", []))
        + f'<p id="total">Programme total: now {money(total["entitlement_now"])}, proposed '
        f"{money(total['entitlement_proposed'])}, delta {signed(total['delta'])} {html.escape(c.currency)}.</p>"
        f'<figure class="chart">{chart_svg}</figure>'
        f'<section id="programme"><h2>Programme per month</h2>{programme}</section>'
        f'<section id="partners"><h2>Per partner and month</h2>{partners}</section>'
        f'<section id="tiers"><h2>Tier changes</h2>{tiers}</section>'
        f'<section id="attribution"><h2>Attribution shift per model (won deals closed in these months)</h2>'
        f"{models}<p>Per partner: attribution_shift.csv.</p></section>"
        "</body></html>\n"
    )


# --- the command -------------------------------------------------------------------------------------------------------


@dataclass
class SimulationResult:
    out_dir: Path
    comparison: Comparison
    meta: dict
    lines: list[str] = field(default_factory=list)


def last_build_at(settings: Settings) -> dt.datetime | None:
    """When the pipeline's last dbt invocation finished (its run_results.json in the pipeline's dbt folder)."""
    try:
        results = json.loads((settings.dbt_target_dir / "run_results.json").read_text(encoding="utf-8"))
        at = dt.datetime.fromisoformat(results["metadata"]["generated_at"].replace("Z", "+00:00"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


def changes_since_build(conn: psycopg.Connection, built_at: dt.datetime | None) -> list[str]:
    """Inputs of the models that changed after the last nightly build: they count on the proposed side only."""
    if built_at is None:
        return []
    try:
        counts = conn.execute(
            """
            select
                (select count(*) from controls.attribution_overrides where created_at > %(at)s)
                + (select count(*) from controls.attribution_override_withdrawals where created_at > %(at)s),
                (select count(*) from raw.load_batches where finished_at > %(at)s)
            """,
            {"at": built_at},
        ).fetchone()
    except psycopg.errors.InsufficientPrivilege:
        return []  # a login that may not read them: dbt's own reads will say so if it matters
    when = built_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    notes = []
    if counts[0]:
        notes.append(f"{counts[0]} attribution override action(s)")
    if counts[1]:
        notes.append(f"{counts[1]} landing partition load(s)")
    if not notes:
        return []
    return [
        f"note: {' and '.join(notes)} recorded after the last nightly build ({when}) count on the proposed side "
        "only; to compare the rules alone, simulate again after the next nightly run"
    ]


def _check_warehouse(conn: psycopg.Connection) -> dt.date:
    """The run date of the last nightly build (marts.dim_partners.tier_as_of, the build's run date); refuses
    a warehouse no nightly has built."""
    for relation in REQUIRED:
        if conn.execute("select to_regclass(%s)", (relation,)).fetchone()[0] is None:
            raise SimulationError(
                f"no nightly run has built this warehouse yet ({relation} is missing): run "
                "`referral-pipeline run --date YYYY-MM-DD` (or backfill) first, then simulate"
            )
    run_date = conn.execute("select max(tier_as_of) from marts.dim_partners").fetchone()[0]
    if run_date is None:
        raise SimulationError(
            "no nightly run has built this warehouse yet (marts.dim_partners is empty): run "
            "`referral-pipeline run --date YYYY-MM-DD` (or backfill) first, then simulate"
        )
    return run_date


def _write(path: Path, content: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(content)
    tmp.replace(path)


def simulate(
    url: str,
    rules_path: str | Path,
    month_from: str,
    month_to: str,
    *,
    settings: Settings | None = None,
    out_dir: Path | None = None,
    report: Reporter | None = None,
    now: dt.datetime | None = None,
) -> SimulationResult:
    """Simulate `rules_path` over the months `month_from`..`month_to` (YYYY-MM) against the warehouse at
    `url`; write the files into `out_dir` (default: the data folder's simulations/<id>/)."""
    from orchestration.dbt_project import dbt_run_env

    from .dbt_cli import dbt_env

    settings = settings or Settings.from_env()
    report = report or Silent()
    try:
        months = month_range(parse_month(month_from), parse_month(month_to))
    except ValueError as exc:
        raise SimulationError(f"--from/--to: {exc}") from None
    rules = load_rules(rules_path)  # RulesError: one line naming the file, the version and the field

    with psycopg.connect(url, autocommit=True) as conn:
        run_date = _check_warehouse(conn)
        current = conn.execute("select program_currency from rules.program").fetchone()
        currency = current[0] if current else rules.program_currency
        if rules.program_currency != currency:
            raise SimulationError(
                f"{rules_path}: program: program_currency: the proposed file says {rules.program_currency} but "
                f"the warehouse's amounts are in {currency}; a simulation compares amounts in one currency"
            )
        notes = changes_since_build(conn, last_build_at(settings))
        remove_stale_scratch(conn, report.line)
        prefix = scratch_prefix(now or dt.datetime.now(dt.UTC), secrets.token_hex(3))
        conn.execute("select pg_advisory_lock(%s, hashtext(%s))", (LOCK_CLASS, prefix))
        target_dir = settings.data_dir / "dbt" / "simulations" / simulation_id(prefix)
        keep_dbt_output = False
        out = Path(out_dir) if out_dir else settings.data_dir / "simulations" / simulation_id(prefix)
        try:
            with _terminate_as_interrupt():
                report.line(
                    f"simulation {simulation_id(prefix)}: proposed rules {rules_path} ({len(rules.versions)} version(s))"
                )
                report.line(f"  scratch schemas {prefix}*; as of the nightly run of {run_date}")
                load_scratch_rules(conn, rules, f"{prefix}rules")
                target_dir.mkdir(parents=True, exist_ok=True)
                env = {
                    **os.environ,
                    **dbt_env(url, run_date),
                    **dbt_run_env(target_dir),
                    **scratch_env(prefix),
                }
                try:
                    run_dbt(env, target_dir, report)
                except SimulationError:
                    keep_dbt_output = True  # the error message points at its dbt-output.log
                    raise
                comparison = compare(conn, prefix, months, currency)
        finally:
            try:
                drop_scratch(url, prefix)
                report.line("  scratch schemas removed")
            finally:
                conn.execute("select pg_advisory_unlock(%s, hashtext(%s))", (LOCK_CLASS, prefix))
                if not keep_dbt_output:
                    shutil.rmtree(target_dir, ignore_errors=True)

    meta = {
        "simulation_id": simulation_id(prefix),
        "rules_file": str(rules_path),
        "rules_sha256": rules.sha256,
        "from": month_from,
        "to": month_to,
        "run_date": run_date.isoformat(),
        "program_currency": currency,
        "notes": notes,
    }
    files = csv_files(comparison)
    page = render_html(comparison, meta, render_chart_svg(comparison))
    lines = summary_lines(comparison, meta)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            _write(out / name, content)
        _write(out / "simulation.html", page.encode("utf-8"))
        _write(out / "simulation.json", (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode("utf-8"))
        _write(out / "summary.txt", ("\n".join(lines) + "\n").encode("utf-8"))
    except OSError as exc:
        raise SimulationError(f"cannot write the simulation to {out}: {exc.strerror or exc}") from None
    return SimulationResult(out_dir=out, comparison=comparison, meta=meta, lines=lines)
