"""Helpers for the payout tests: the input relations the payout step reads (reward events, partners, fx rates),
created as plain tables, and readers for the golden example's small CSVs."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
from decimal import Decimal
from pathlib import Path

import psycopg

from referral_pipeline.rules import parse_rules, write_rules

INPUT_DDL = """
create schema if not exists marts;
create schema if not exists staging;
drop table if exists marts.fct_reward_entitlements;
create table marts.fct_reward_entitlements (
  event_id text primary key, event_type text not null, partner_id text not null, deal_id text, referral_id text,
  amount numeric(18, 2) not null, earned_at timestamptz not null, payable_at timestamptz not null
);
drop table if exists staging.stg_crm__partners;
create table staging.stg_crm__partners (
  partner_id text primary key, name text not null, status text not null, tax_form_on_file boolean,
  payout_currency text not null
);
drop table if exists staging.stg_finance__fx_rates;
create table staging.stg_finance__fx_rates (rate_date date not null, currency text not null, rate numeric not null);
"""

RULES_TEMPLATE = """
program_currency: USD
payout_period: monthly
free_mail_domains: [gmail.com, yahoo.com, outlook.com, hotmail.com, icloud.com, aol.com, proton.me, gmx.com]
versions:
  - effective_from: 2024-01-01
    attribution_model: position_based
    time_decay_half_life_days: 7
    lookback_days: {referral: 180, marketing: 90, link_click: 30}
    max_clicks_per_ip_per_day: 20
    qualified_stage: qualified
    eligible_deal_types: [new_business]
    hold_days: {referral_bonus: 0, qualified_bonus: 0, commission: 30}
    clawback_days: 90
    commission_cap_per_deal: null
    minimum_payout: MINIMUM
    quality_lead: {min_employee_count: 50, eligible_countries: []}
    tiers:
      - {name: registered, min_trailing_revenue: 0, commission_rate: 0.10, referral_bonus: 50, qualified_bonus: 250}
"""


def setup_inputs(url: str, rules_text: str | None = None, minimum: str = "100") -> None:
    """Create empty input relations and load the rules (the shipped default unless given)."""
    text = rules_text or RULES_TEMPLATE.replace("MINIMUM", minimum)
    with psycopg.connect(url) as conn:
        conn.execute(INPUT_DDL)
        write_rules(conn, parse_rules(text, "rules.yml"))


def ts(text: str) -> dt.datetime:
    """A timestamp as the landing contract reads it: with an offset converted to UTC, without one UTC."""
    value = dt.datetime.fromisoformat(text)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def set_events(url: str, events: list[dict]) -> None:
    """Replace the reward events. Each dict: event_id, event_type, partner_id, deal_id, referral_id, amount,
    earned_at, payable_at (text or datetime)."""
    with psycopg.connect(url) as conn:
        conn.execute("truncate marts.fct_reward_entitlements")
        with conn.cursor() as cur:
            cur.executemany(
                "insert into marts.fct_reward_entitlements values (%s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        e["event_id"],
                        e["event_type"],
                        e["partner_id"],
                        e.get("deal_id") or None,
                        e.get("referral_id") or None,
                        Decimal(str(e["amount"])),
                        ts(e["earned_at"]) if isinstance(e["earned_at"], str) else e["earned_at"],
                        ts(e["payable_at"]) if isinstance(e["payable_at"], str) else e["payable_at"],
                    )  # fmt: skip
                    for e in events
                ],
            )


def set_partners(url: str, partners: list[tuple]) -> None:
    """Replace the partners: (partner_id, name, status, tax_form_on_file, payout_currency)."""
    with psycopg.connect(url) as conn:
        conn.execute("truncate staging.stg_crm__partners")
        with conn.cursor() as cur:
            cur.executemany("insert into staging.stg_crm__partners values (%s, %s, %s, %s, %s)", partners)


def set_rates(url: str, rates: list[tuple]) -> None:
    """Replace the fx rates: (rate_date, currency, rate as text)."""
    with psycopg.connect(url) as conn:
        conn.execute("truncate staging.stg_finance__fx_rates")
        with conn.cursor() as cur:
            cur.executemany(
                "insert into staging.stg_finance__fx_rates values (%s, %s, %s)",
                [(d, c, Decimal(r)) for d, c, r in rates],
            )


def event(event_id: str, partner_id: str, amount: str, payable_at: str, earned_at: str | None = None) -> dict:
    """A synthetic event; the type and subject follow the event_id (type:subject[:partner])."""
    etype, subject = event_id.split(":")[:2]
    return {
        "event_id": event_id,
        "event_type": etype,
        "partner_id": partner_id,
        "deal_id": subject if etype != "referral_bonus" else None,
        "referral_id": subject if etype == "referral_bonus" else None,
        "amount": amount,
        "earned_at": earned_at or payable_at,
        "payable_at": payable_at,
    }


# --- golden example ----------------------------------------------------------------------------------------


def read_csv_file(path: Path) -> list[dict[str, str]]:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8"))))


def landing_rows(golden: Path, entity: str, up_to: dt.date) -> list[tuple[dt.date, dict[str, str]]]:
    rows = []
    for part in sorted((golden / "landing" / entity).glob("dt=*")):
        day = dt.date.fromisoformat(part.name.removeprefix("dt="))
        if day <= up_to:
            for f in sorted(part.iterdir()):
                rows += [(day, {k: (v or "").strip() for k, v in r.items()}) for r in read_csv_file(f)]
    return rows


def golden_partners(golden: Path, run_date: dt.date) -> list[tuple]:
    """Latest record per partner (by updated_at) among the partitions loaded up to run_date; rows with an invalid
    updated_at are rejected by loading, so they are skipped here too."""
    latest: dict[str, tuple] = {}
    for _, r in landing_rows(golden, "crm/partners", run_date):
        try:
            updated = ts(r["updated_at"])
        except ValueError:
            continue
        if r["partner_id"] not in latest or updated >= latest[r["partner_id"]][0]:
            tax = r["tax_form_on_file"].lower() in ("true", "1")
            latest[r["partner_id"]] = (
                updated,
                (r["partner_id"], r["name"], r["status"].lower(), tax, r["payout_currency"].upper()),
            )
    return [v[1] for v in latest.values()]


def golden_rates(golden: Path, run_date: dt.date) -> list[tuple]:
    return [
        (r["rate_date"], r["currency"].upper(), r["rate"])
        for _, r in landing_rows(golden, "finance/fx_rates", run_date)
    ]


def read_published(root: Path, period: str, name: str) -> list[dict[str, str]]:
    return read_csv_file(root / f"period={period}" / name)
