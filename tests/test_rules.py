"""Validation of the program rules file (SPEC section 7): every error names the file, the version and the field."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import jinja2
import psycopg
import pytest
import yaml

from referral_pipeline.config import DBT_PROJECT_DIR, DEFAULT_RULES_FILE
from referral_pipeline.rules import RulesError, load_rules, parse_rules, write_rules

BASE = yaml.safe_load(DEFAULT_RULES_FILE.read_text(encoding="utf-8"))


def _rules(edit=None, *, extra_version: dict | None = None) -> str:
    doc = yaml.safe_load(yaml.safe_dump(BASE))
    version = doc["versions"][0]
    if edit:
        edit(doc, version)
    if extra_version is not None:
        doc["versions"].append({**yaml.safe_load(yaml.safe_dump(version)), **extra_version})
    return yaml.safe_dump(doc, sort_keys=False)


def _error(text: str) -> str:
    with pytest.raises(RulesError) as exc:
        parse_rules(text, "rules.yml")
    return str(exc.value)


def test_default_rules_load():
    rules = load_rules(DEFAULT_RULES_FILE)
    assert rules.program_currency == "USD"
    (v,) = rules.versions
    assert v.version_id == "2024-01-01"
    assert v.attribution_model == "position_based"
    assert v.lookback_days == {"referral": 180, "marketing": 90, "link_click": 30}
    assert v.hold_days == {"referral_bonus": 0, "qualified_bonus": 0, "commission": 30}
    assert v.commission_cap_per_deal is None
    assert [(t.name, t.min_trailing_revenue, t.commission_rate) for t in v.tiers] == [
        ("registered", Decimal(0), Decimal("0.10")),
        ("silver", Decimal(50000), Decimal("0.15")),
        ("gold", Decimal(250000), Decimal("0.20")),
    ]
    assert "gmail.com" in rules.free_mail_domains


def test_version_at_picks_latest_effective_on_or_before():
    rules = parse_rules(_rules(extra_version={"effective_from": "2025-02-01", "clawback_days": 60}))
    assert rules.version_at(dt.date(2025, 1, 31)).clawback_days == 90
    assert rules.version_at(dt.date(2025, 2, 1)).clawback_days == 60
    with pytest.raises(RulesError, match="no rules version is in force on 2023-12-31"):
        rules.version_at(dt.date(2023, 12, 31))


def _set(field, value):
    def edit(_doc, v):
        v[field] = value

    return edit


def _set_tier(index, field, value):
    def edit(_doc, v):
        v["tiers"][index][field] = value

    return edit


def _drop(field):
    def edit(_doc, v):
        del v[field]

    return edit


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [
        (
            _set("attribution_model", "u_shaped"),
            ["version 2024-01-01", "attribution_model", "unknown model 'u_shaped'"],
        ),
        (
            _set_tier(1, "min_trailing_revenue", 0),
            ["version 2024-01-01", "tiers[1].min_trailing_revenue", "ascending"],
        ),
        (
            _set_tier(2, "min_trailing_revenue", 40000),
            ["version 2024-01-01", "tiers[2].min_trailing_revenue", "ascending"],
        ),
        (_set_tier(0, "commission_rate", -0.1), ["version 2024-01-01", "tiers[0].commission_rate", ">= 0"]),
        (_set_tier(0, "commission_rate", 1.5), ["version 2024-01-01", "tiers[0].commission_rate", "<= 1"]),
        (_set_tier(1, "referral_bonus", -5), ["version 2024-01-01", "tiers[1].referral_bonus"]),
        (
            _set_tier(1, "qualified_bonus", "lots"),
            ["version 2024-01-01", "tiers[1].qualified_bonus", "must be a number"],
        ),
        (_set_tier(0, "min_trailing_revenue", 10), ["tiers[0].min_trailing_revenue", "start at 0"]),
        (_set_tier(1, "name", "registered"), ["tiers[1].name", "duplicate tier name"]),
        (_set_tier(1, "rate", 0.2), ["version 2024-01-01", "tiers[1].rate", "unknown field"]),
        (
            _set_tier(1, "commission_rate", None),
            ["version 2024-01-01", "tiers[1].commission_rate", "required"],
        ),
        (_set("tiers", []), ["version 2024-01-01", "tiers", "non-empty"]),
        (_set("time_decay_half_life_days", 0), ["time_decay_half_life_days", "> 0"]),
        (_set("lookback_days", {"referral": 180, "marketing": 90}), ["lookback_days.link_click", "required"]),
        (
            _set("lookback_days", {"referral": 180, "marketing": 90, "link_click": -1}),
            ["lookback_days.link_click", ">= 0"],
        ),
        (
            _set("hold_days", {"referral_bonus": 0, "qualified_bonus": 0, "commission": 30, "bonus": 1}),
            ["hold_days.bonus", "unknown key"],
        ),
        (
            _set("hold_days", {"referral_bonus": 0, "qualified_bonus": 0, "commission": 2.5}),
            ["hold_days.commission", "whole number"],
        ),
        (_set("clawback_days", True), ["clawback_days", "whole number"]),
        (_set("max_clicks_per_ip_per_day", 0), ["max_clicks_per_ip_per_day", ">= 1"]),
        (
            _set("eligible_deal_types", ["new_business", "upsell"]),
            ["eligible_deal_types", "unknown deal type 'upsell'"],
        ),
        (_set("commission_cap_per_deal", -1), ["commission_cap_per_deal", ">= 0"]),
        (_set("minimum_payout", "ten"), ["minimum_payout", "must be a number"]),
        (_set("qualified_stage", " "), ["qualified_stage", "non-empty"]),
        (
            _set("quality_lead", {"min_employee_count": -1, "eligible_countries": []}),
            ["quality_lead.min_employee_count", ">= 0"],
        ),
        (
            _set("quality_lead", {"min_employee_count": 5, "countries": []}),
            ["quality_lead.countries", "unknown field"],
        ),
        (
            _set("quality_lead", {"min_employee_count": 5, "eligible_countries": ["France"]}),
            ["quality_lead.eligible_countries", "two-letter"],
        ),
        (_set("tier_table", []), ["version 2024-01-01", "tier_table", "unknown field"]),
        (_drop("clawback_days"), ["version 2024-01-01", "clawback_days", "required"]),
        (_set("effective_from", "2024-13-01"), ["versions[0]", "effective_from", "YYYY-MM-DD"]),
    ],
)
def test_invalid_version_fields_are_named(edit, fragments):
    message = _error(_rules(edit))
    assert message.startswith("rules.yml: ")
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_duplicate_effective_dates():
    message = _error(_rules(extra_version={"clawback_days": 60}))
    assert "version 2024-01-01" in message and "effective_from" in message and "same date" in message


def test_versions_are_sorted_by_effective_from():
    text = _rules(extra_version={"effective_from": "2023-06-01"})
    assert [v.version_id for v in parse_rules(text).versions] == ["2023-06-01", "2024-01-01"]


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [
        (lambda d, _v: d.update(program_currency="US"), ["program", "program_currency", "three-letter"]),
        (lambda d, _v: d.update(payout_period="weekly"), ["program", "payout_period", "monthly"]),
        (lambda d, _v: d.update(versions=[]), ["program", "versions", "non-empty"]),
        (
            lambda d, _v: d.update(free_mail_domains=["gmail.com"]),
            ["program", "free_mail_domains", "yahoo.com"],
        ),
        (lambda d, _v: d.update(bonus=1), ["program", "bonus", "unknown field"]),
    ],
)
def test_invalid_program_fields_are_named(edit, fragments):
    message = _error(_rules(edit))
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_not_yaml_and_unreadable_file(tmp_path):
    assert "not valid YAML" in _error("versions: [")
    with pytest.raises(RulesError, match="cannot read the rules file"):
        load_rules(tmp_path / "missing.yml")


def test_write_rules_replaces_the_warehouse_copy(warehouse_url):
    rules = parse_rules(
        _rules(extra_version={"effective_from": "2025-02-01", "commission_cap_per_deal": 1000})
    )
    with psycopg.connect(warehouse_url) as conn:
        write_rules(conn, rules)
        write_rules(conn, rules)
        versions = conn.execute(
            "select rules_version, effective_from, effective_to, commission_cap_per_deal, eligible_deal_types"
            " from rules.versions order by 1"
        ).fetchall()
        tiers = conn.execute("select count(*) from rules.tiers").fetchone()[0]
    assert versions == [
        ("2024-01-01", dt.date(2024, 1, 1), dt.date(2025, 2, 1), None, ["new_business"]),
        ("2025-02-01", dt.date(2025, 2, 1), None, Decimal(1000), ["new_business"]),
    ]
    assert tiers == 6


def test_every_reader_of_the_version_in_force_agrees(warehouse_url):
    """The rule "latest effective_from on or before the day" is computed once, in Python (version_at), and
    written as [effective_from, effective_to) windows; the ledger (and every dbt model, through the macro
    version_in_force_on) reads those windows. Day by day around each boundary, all give the same version."""
    from payout_exports.ledger import PayoutError, read_rules

    third = yaml.safe_load(_rules(extra_version={"effective_from": "2025-02-01"}))
    third["versions"].append({**third["versions"][-1], "effective_from": "2025-03-15"})
    rules = parse_rules(yaml.safe_dump(third, sort_keys=False))
    macros = DBT_PROJECT_DIR / "macros"
    in_force = jinja2.Environment().from_string(
        (macros / "utc_time.sql").read_text(encoding="utf-8")
        + (macros / "rules_in_force.sql").read_text(encoding="utf-8")
        + "{{ version_in_force_on('v', '%(d)s::date') }}"
    )
    join = in_force.render().strip()
    with psycopg.connect(warehouse_url) as conn:
        write_rules(conn, rules)
        day = dt.date(2023, 12, 30)
        while day <= dt.date(2025, 3, 17):
            windows = conn.execute(
                f"select rules_version from rules.versions v where {join}", {"d": day}
            ).fetchall()
            if day < dt.date(2024, 1, 1):
                assert windows == []
                with pytest.raises(PayoutError):
                    read_rules(conn, day)
            else:
                expected = rules.version_at(day).version_id
                assert windows == [(expected,)], day
                assert read_rules(conn, day).rules_version == expected, day
            day += dt.timedelta(days=1 if day.month in (1, 2, 3) and day.year == 2025 else 40)
