"""Program rules (see docs/rules.md, The rules file): load the YAML file, validate it with errors that name
the version and field, and write it to the warehouse schema `rules`, where dbt reads it as a source."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import psycopg
import yaml

MODELS = ("first_touch", "last_touch", "linear", "time_decay", "position_based")
# Data-driven models (see docs/analytics.md) are refitted every night: analysis only, never payout credit.
DATA_DRIVEN_MODELS = ("markov", "shapley")
TOUCH_TYPES = ("referral", "marketing", "link_click")
EVENT_TYPES = ("referral_bonus", "qualified_bonus", "commission")
DEAL_TYPES = ("new_business", "expansion", "renewal")
BATCH_APPROVAL = ("none", "required")
TIER_FIELDS = ("name", "min_trailing_revenue", "commission_rate", "referral_bonus", "qualified_bonus")
REQUIRED_FREE_MAIL = (
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "hotmail.com",
    "icloud.com",
    "aol.com",
    "proton.me",
    "gmx.com",
)


class RulesError(ValueError):
    """The rules file is invalid; the message names the file, version and field."""


@dataclass(frozen=True)
class Tier:
    name: str
    min_trailing_revenue: Decimal
    commission_rate: Decimal
    referral_bonus: Decimal
    qualified_bonus: Decimal


@dataclass(frozen=True)
class RulesVersion:
    effective_from: dt.date
    attribution_model: str
    time_decay_half_life_days: Decimal
    lookback_days: dict[str, int]
    max_clicks_per_ip_per_day: int
    qualified_stage: str
    eligible_deal_types: tuple[str, ...]
    hold_days: dict[str, int]
    clawback_days: int
    commission_cap_per_deal: Decimal | None
    minimum_payout: Decimal
    quality_min_employee_count: int
    quality_eligible_countries: tuple[str, ...]
    tiers: tuple[Tier, ...]

    @property
    def version_id(self) -> str:
        return self.effective_from.isoformat()


@dataclass(frozen=True)
class ProgramRules:
    program_currency: str
    payout_period: str
    free_mail_domains: tuple[str, ...]
    versions: tuple[RulesVersion, ...]  # ascending by effective_from
    sha256: str
    source_file: str
    # Sign-off before money moves (docs/finance.md): 'required' records each batch as awaiting_approval.
    batch_approval: str = "none"

    def version_at(self, day: dt.date) -> RulesVersion:
        """The version in force on a UTC date: the latest effective_from on or before it."""
        chosen = None
        for v in self.versions:
            if v.effective_from <= day:
                chosen = v
        if chosen is None:
            raise RulesError(
                f"no rules version is in force on {day} (the first is {self.versions[0].version_id})"
            )
        return chosen


class _Ctx:
    def __init__(self, file: str, where: str):
        self.file, self.where = file, where

    def fail(self, field: str, msg: str) -> RulesError:
        return RulesError(f"{self.file}: {self.where}: {field}: {msg}")

    def get(self, d: dict, field: str) -> Any:
        if not isinstance(d, dict) or field not in d:
            raise self.fail(field, "is required")
        return d[field]

    def decimal(
        self,
        value: Any,
        field: str,
        *,
        minimum: Decimal | None = Decimal(0),
        maximum: Decimal | None = None,
        strict: bool = False,
    ) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
            raise self.fail(field, f"must be a number, got {value!r}")
        try:
            d = Decimal(str(value))
        except InvalidOperation:
            raise self.fail(field, f"must be a number, got {value!r}") from None
        if not d.is_finite():
            raise self.fail(field, f"must be a finite number, got {value!r}")
        if minimum is not None and (d <= minimum if strict else d < minimum):
            raise self.fail(field, f"must be {'>' if strict else '>='} {minimum}, got {value!r}")
        if maximum is not None and d > maximum:
            raise self.fail(field, f"must be <= {maximum}, got {value!r}")
        return d

    def integer(self, value: Any, field: str, *, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(field, f"must be a whole number, got {value!r}")
        if value < minimum:
            raise self.fail(field, f"must be >= {minimum}, got {value!r}")
        return value


def _parse_version(raw: Any, index: int, file: str) -> RulesVersion:
    ctx = _Ctx(file, f"versions[{index}]")
    if not isinstance(raw, dict):
        raise ctx.fail("(version)", "must be a mapping")
    eff = ctx.get(raw, "effective_from")
    if isinstance(eff, str):
        try:
            eff = dt.date.fromisoformat(eff)
        except ValueError:
            raise ctx.fail("effective_from", f"must be a date YYYY-MM-DD, got {eff!r}") from None
    if isinstance(eff, dt.datetime) or not isinstance(eff, dt.date):
        raise ctx.fail("effective_from", f"must be a date YYYY-MM-DD, got {eff!r}")
    ctx = _Ctx(file, f"version {eff.isoformat()}")
    known = {
        "effective_from",
        "attribution_model",
        "time_decay_half_life_days",
        "lookback_days",
        "max_clicks_per_ip_per_day",
        "qualified_stage",
        "eligible_deal_types",
        "hold_days",
        "clawback_days",
        "commission_cap_per_deal",
        "minimum_payout",
        "quality_lead",
        "tiers",
    }
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ctx.fail(unknown[0], "unknown field")
    model = ctx.get(raw, "attribution_model")
    if model in DATA_DRIVEN_MODELS:
        raise ctx.fail(
            "attribution_model",
            f"{model!r} is a data-driven model for analysis only and cannot decide payouts (each nightly refit "
            f"would change paid history); expected one of {', '.join(MODELS)}",
        )
    if model not in MODELS:
        raise ctx.fail("attribution_model", f"unknown model {model!r}; expected one of {', '.join(MODELS)}")
    half_life = ctx.decimal(
        ctx.get(raw, "time_decay_half_life_days"), "time_decay_half_life_days", strict=True
    )

    def per_key(field: str, keys: tuple[str, ...]) -> dict[str, int]:
        value = ctx.get(raw, field)
        if not isinstance(value, dict):
            raise ctx.fail(field, f"must be a mapping of {', '.join(keys)}")
        extra = sorted(set(value) - set(keys))
        if extra:
            raise ctx.fail(f"{field}.{extra[0]}", f"unknown key; expected {', '.join(keys)}")
        return {
            k: ctx.integer(ctx.get(value, k) if k in value else ctx.get({}, f"{field}.{k}"), f"{field}.{k}")
            for k in keys
        }

    lookback = per_key("lookback_days", TOUCH_TYPES)
    hold = per_key("hold_days", EVENT_TYPES)
    max_clicks = ctx.integer(
        ctx.get(raw, "max_clicks_per_ip_per_day"), "max_clicks_per_ip_per_day", minimum=1
    )
    stage = ctx.get(raw, "qualified_stage")
    if not isinstance(stage, str) or not stage.strip():
        raise ctx.fail("qualified_stage", "must be a non-empty text")
    types = ctx.get(raw, "eligible_deal_types")
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise ctx.fail("eligible_deal_types", "must be a list of deal types")
    for t in types:
        if t.lower() not in DEAL_TYPES:
            raise ctx.fail(
                "eligible_deal_types", f"unknown deal type {t!r}; expected {', '.join(DEAL_TYPES)}"
            )
    clawback = ctx.integer(ctx.get(raw, "clawback_days"), "clawback_days")
    cap_raw = raw.get("commission_cap_per_deal")
    cap = None if cap_raw is None else ctx.decimal(cap_raw, "commission_cap_per_deal")
    minimum = ctx.decimal(ctx.get(raw, "minimum_payout"), "minimum_payout")
    ql = ctx.get(raw, "quality_lead")
    if not isinstance(ql, dict):
        raise ctx.fail("quality_lead", "must be a mapping with min_employee_count and eligible_countries")
    extra = sorted(set(ql) - {"min_employee_count", "eligible_countries"})
    if extra:
        raise ctx.fail(
            f"quality_lead.{extra[0]}", "unknown field; expected min_employee_count, eligible_countries"
        )
    min_emp = ctx.integer(
        ql["min_employee_count"]
        if "min_employee_count" in ql
        else ctx.get({}, "quality_lead.min_employee_count"),
        "quality_lead.min_employee_count",
    )
    countries = ql.get("eligible_countries") or []
    if not isinstance(countries, list) or not all(
        isinstance(c, str) and len(c.strip()) == 2 and c.strip().isascii() and c.strip().isalpha()
        for c in countries
    ):
        raise ctx.fail(
            "quality_lead.eligible_countries",
            f"must be a list of two-letter country codes, got {countries!r}",
        )
    tiers_raw = ctx.get(raw, "tiers")
    if not isinstance(tiers_raw, list) or not tiers_raw:
        raise ctx.fail("tiers", "must be a non-empty list")
    tiers: list[Tier] = []
    for i, t in enumerate(tiers_raw):
        f = f"tiers[{i}]"
        if not isinstance(t, dict):
            raise ctx.fail(f, "must be a mapping")
        extra = sorted(set(t) - set(TIER_FIELDS))
        if extra:
            raise ctx.fail(f"{f}.{extra[0]}", f"unknown field; expected {', '.join(TIER_FIELDS)}")
        missing = [k for k in TIER_FIELDS if t.get(k) is None]
        if missing:
            raise ctx.fail(f"{f}.{missing[0]}", "is required")
        name = t["name"]
        if not isinstance(name, str) or not name.strip():
            raise ctx.fail(f"{f}.name", "must be a non-empty text")
        tier = Tier(
            name=name.strip(),
            min_trailing_revenue=ctx.decimal(t["min_trailing_revenue"], f"{f}.min_trailing_revenue"),
            commission_rate=ctx.decimal(t["commission_rate"], f"{f}.commission_rate", maximum=Decimal(1)),
            referral_bonus=ctx.decimal(t["referral_bonus"], f"{f}.referral_bonus"),
            qualified_bonus=ctx.decimal(t["qualified_bonus"], f"{f}.qualified_bonus"),
        )
        if tiers and tier.min_trailing_revenue <= tiers[-1].min_trailing_revenue:
            raise ctx.fail(
                f"{f}.min_trailing_revenue", "tiers must be in strictly ascending min_trailing_revenue"
            )
        if tier.name in {x.name for x in tiers}:
            raise ctx.fail(f"{f}.name", f"duplicate tier name {tier.name!r}")
        tiers.append(tier)
    if tiers[0].min_trailing_revenue != 0:
        raise ctx.fail(
            "tiers[0].min_trailing_revenue", "the first tier must start at 0 so that every partner has a tier"
        )
    return RulesVersion(
        effective_from=eff,
        attribution_model=model,
        time_decay_half_life_days=half_life,
        lookback_days=lookback,
        max_clicks_per_ip_per_day=max_clicks,
        qualified_stage=stage.strip(),
        eligible_deal_types=tuple(t.lower() for t in types),
        hold_days=hold,
        clawback_days=clawback,
        commission_cap_per_deal=cap,
        minimum_payout=minimum,
        quality_min_employee_count=min_emp,
        quality_eligible_countries=tuple(c.strip().upper() for c in countries),
        tiers=tuple(tiers),
    )


def parse_rules(text: str, file: str = "<rules>") -> ProgramRules:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
        raise RulesError(f"{file}:{where} not valid YAML: {problem}") from None
    ctx = _Ctx(file, "program")
    if not isinstance(raw, dict):
        raise RulesError(f"{file}: the rules file must be a YAML mapping")
    unknown = sorted(
        set(raw) - {"program_currency", "payout_period", "free_mail_domains", "versions", "batch_approval"}
    )
    if unknown:
        raise ctx.fail(unknown[0], "unknown field")
    currency = ctx.get(raw, "program_currency")
    if not (
        isinstance(currency, str)
        and len(currency.strip()) == 3
        and currency.strip().isascii()
        and currency.strip().isalpha()
    ):
        raise ctx.fail("program_currency", f"must be a three-letter currency code, got {currency!r}")
    period = raw.get("payout_period", "monthly")
    if period != "monthly":
        raise ctx.fail("payout_period", f"only 'monthly' is supported, got {period!r}")
    approval = raw.get("batch_approval", "none")
    if approval not in BATCH_APPROVAL:
        raise ctx.fail(
            "batch_approval",
            f"must be 'none' (batches are published as recorded) or 'required' (finance signs each batch off "
            f"before it is published), got {approval!r}",
        )
    fm = ctx.get(raw, "free_mail_domains")
    if not isinstance(fm, list) or not all(isinstance(d, str) and d.strip() for d in fm):
        raise ctx.fail("free_mail_domains", "must be a list of domains")
    absent = [d for d in REQUIRED_FREE_MAIL if d not in {x.strip().lower() for x in fm}]
    if absent:
        raise ctx.fail(
            "free_mail_domains",
            f"must list at least {', '.join(REQUIRED_FREE_MAIL)}; missing {', '.join(absent)}",
        )
    versions_raw = ctx.get(raw, "versions")
    if not isinstance(versions_raw, list) or not versions_raw:
        raise ctx.fail("versions", "must be a non-empty list")
    versions = [_parse_version(v, i, file) for i, v in enumerate(versions_raw)]
    seen: set[dt.date] = set()
    for v in versions:
        if v.effective_from in seen:
            raise RulesError(
                f"{file}: version {v.version_id}: effective_from: two versions take effect on the same date"
            )
        seen.add(v.effective_from)
    versions.sort(key=lambda v: v.effective_from)
    return ProgramRules(
        program_currency=currency.strip().upper(),
        payout_period=period,
        free_mail_domains=tuple(sorted({d.strip().lower() for d in fm})),
        versions=tuple(versions),
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        source_file=file,
        batch_approval=approval,
    )


def load_rules(path: str | Path) -> ProgramRules:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(
            f"{p}: cannot read the rules file ({exc.strerror}); set REFERRAL_RULES_FILE to a readable file"
        ) from None
    return parse_rules(text, str(p))


def write_rules(conn: psycopg.Connection, rules: ProgramRules) -> None:
    """Replace the warehouse copy of the rules, in one transaction."""
    with conn.transaction():
        for t in ("program", "versions", "tiers", "free_mail_domains"):
            conn.execute(f"delete from rules.{t}")
        conn.execute(
            "insert into rules.program (rules_sha256, program_currency, payout_period, source_file, loaded_at, "
            "batch_approval) values (%s, %s, %s, %s, now(), %s)",
            (
                rules.sha256,
                rules.program_currency,
                rules.payout_period,
                rules.source_file,
                rules.batch_approval,
            ),
        )
        for i, v in enumerate(rules.versions):
            nxt = rules.versions[i + 1].effective_from if i + 1 < len(rules.versions) else None
            conn.execute(
                "insert into rules.versions values (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (
                    v.version_id,
                    v.effective_from,
                    nxt,
                    v.attribution_model,
                    v.time_decay_half_life_days,
                    v.lookback_days["referral"],
                    v.lookback_days["marketing"],
                    v.lookback_days["link_click"],
                    v.max_clicks_per_ip_per_day,
                    v.qualified_stage,
                    list(v.eligible_deal_types),
                    v.hold_days["referral_bonus"],
                    v.hold_days["qualified_bonus"],
                    v.hold_days["commission"],
                    v.clawback_days,
                    v.commission_cap_per_deal,
                    v.minimum_payout,
                    v.quality_min_employee_count,
                    list(v.quality_eligible_countries),
                ),
            )
            for t in v.tiers:
                conn.execute(
                    "insert into rules.tiers values (%s,%s,%s,%s,%s,%s)",
                    (
                        v.version_id,
                        t.name,
                        t.min_trailing_revenue,
                        t.commission_rate,
                        t.referral_bonus,
                        t.qualified_bonus,
                    ),
                )
        with conn.cursor().copy("copy rules.free_mail_domains (domain) from stdin") as cp:
            for d in rules.free_mail_domains:
                cp.write_row((d,))
