"""An independent, pure-Python reading of SPEC sections 4 to 7: from the raw warehouse tables, the program rules
and the control tables to touchpoints, attribution credits and reward events.

It is written from the spec alone, as slow and plain as possible, so that the dbt marts can be checked against
it on any generated dataset. Weights use Decimal in a 40-digit context; event amounts are rounded once, to 2
places, half away from zero.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Context, Decimal
from urllib.parse import parse_qs, urlsplit

import psycopg
from psycopg.rows import dict_row

from referral_pipeline.rules import ProgramRules, RulesVersion

CTX = Context(prec=40)
MODELS = ("first_touch", "last_touch", "linear", "time_decay", "position_based")
TYPE_ORDER = {"referral": 0, "marketing": 1, "link_click": 2}
PARTNER_MEDIUMS = ("partner", "referral", "affiliate")
CENT = Decimal("0.01")
UTC = dt.UTC

# Entity table -> (identity columns, version column or None, kind)
RECORDS = {
    "crm__partners": (("partner_id",), "updated_at"),
    "crm__companies": (("company_domain",), "updated_at"),
    "crm__contacts": (("contact_id",), "updated_at"),
    "crm__deals": (("deal_id",), "updated_at"),
    "crm__referrals": (("referral_id",), "updated_at"),
    "links__links": (("link_code",), None),
    "finance__fx_rates": (("rate_date", "currency"), None),
}
EVENTS = {
    "crm__deal_stage_history": ("deal_id", "stage", "entered_at"),
    "crm__deal_reversals": ("reversal_id",),
    "marketing__activities": ("activity_id",),
    "links__clicks": ("click_id",),
    "links__conversions": ("conversion_id",),
}


# --------------------------------------------------------------------------------------------- section 4


def _position(row: dict) -> tuple:
    """Where a row sits in the landing zone: partition date, then file (same folder, so path order is name
    order), then physical line."""
    return (row["_partition_date"], row["_source_file"], row["_line_number"])


def _read(conn: psycopg.Connection, table: str) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"select * from raw.{table}").fetchall()


def latest_records(rows: list[dict], key: tuple[str, ...], version: str | None) -> dict[tuple, dict]:
    """Record entities: the greatest version column wins; ties go to the later partition, file and line."""
    best: dict[tuple, tuple] = {}
    for r in rows:
        rank = ((r[version],) if version else ()) + _position(r)
        k = tuple(r[c] for c in key)
        if k not in best or rank > best[k][0]:
            best[k] = (rank, r)
    return {k: v[1] for k, v in best.items()}


def first_events(rows: list[dict], key: tuple[str, ...]) -> list[dict]:
    """Event entities: the first occurrence of an identity (partition, file, line) wins."""
    best: dict[tuple, dict] = {}
    for r in sorted(rows, key=_position):
        best.setdefault(tuple(r[c] for c in key), r)
    return list(best.values())


@dataclass
class Raw:
    partners: dict[str, dict]
    companies: dict[str, dict]
    contacts: dict[str, dict]
    deals: dict[str, dict]
    referrals: dict[str, dict]
    links: dict[str, dict]
    fx: dict[tuple, dict]
    stage_history: list[dict]
    reversals: list[dict]
    activities: list[dict]
    clicks: list[dict]
    conversions: list[dict]
    overrides: dict[str, dict[str, Decimal]] = field(default_factory=dict)


def read_raw(conn: psycopg.Connection) -> Raw:
    conn.execute("set time zone 'UTC'")
    rec = {
        t: {k[0] if len(k) == 1 else k: r for k, r in latest_records(_read(conn, t), key, ver).items()}
        for t, (key, ver) in RECORDS.items()
    }
    ev = {t: first_events(_read(conn, t), key) for t, key in EVENTS.items()}
    return Raw(
        partners=rec["crm__partners"],
        companies=rec["crm__companies"],
        contacts=rec["crm__contacts"],
        deals=rec["crm__deals"],
        referrals=rec["crm__referrals"],
        links=rec["links__links"],
        fx=rec["finance__fx_rates"],
        stage_history=ev["crm__deal_stage_history"],
        reversals=ev["crm__deal_reversals"],
        activities=ev["marketing__activities"],
        clicks=ev["links__clicks"],
        conversions=ev["links__conversions"],
        overrides=read_overrides(conn),
    )


def read_overrides(conn: psycopg.Connection) -> dict[str, dict[str, Decimal]]:
    """SPEC section 8: the latest override set of a deal wins (the greatest override_set_id)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "select deal_id, override_set_id, partner_id, credit from controls.attribution_overrides"
        ).fetchall()
    latest: dict[str, int] = {}
    for r in rows:
        latest[r["deal_id"]] = max(latest.get(r["deal_id"], r["override_set_id"]), r["override_set_id"])
    out: dict[str, dict[str, Decimal]] = defaultdict(dict)
    for r in rows:
        if r["override_set_id"] == latest[r["deal_id"]]:
            out[r["deal_id"]][r["partner_id"]] = (
                out[r["deal_id"]].get(r["partner_id"], Decimal(0)) + r["credit"]
            )
    return dict(out)


# --------------------------------------------------------------------------------------------- section 5


class Identity:
    def __init__(self, raw: Raw, rules: ProgramRules):
        self.free_mail = set(rules.free_mail_domains)
        first: dict[str, tuple] = {}
        for c in raw.conversions:
            k = (c["converted_at"], c["conversion_id"])
            if c["visitor_id"] not in first or k < first[c["visitor_id"]][0]:
                first[c["visitor_id"]] = (k, c["email"])
        self.visitor_email = {v: e for v, (_, e) in first.items()}
        self.raw = raw

    def of_email(self, email: str | None) -> str | None:
        if not email:
            return None
        d = email.split("@", 1)[1]
        return f"email:{email}" if d in self.free_mail else f"domain:{d}"

    def of_row(self, company_domain: str | None, email: str | None) -> str | None:
        if company_domain and company_domain not in self.free_mail:
            return f"domain:{company_domain}"
        return self.of_email(email)

    def deal(self, d: dict) -> str | None:
        contact = self.raw.contacts.get(d["primary_contact_id"]) if d["primary_contact_id"] else None
        return self.of_row(d["company_domain"], contact["email"] if contact else None)

    def referral(self, r: dict) -> str | None:
        return self.of_row(r["company_domain"], r["contact_email"])

    def partner_keys(self, p: dict) -> set[str]:
        keys = {self.of_email(p["email"])}
        if p["company_domain"] and p["company_domain"] not in self.free_mail:
            keys.add(f"domain:{p['company_domain']}")
        return keys - {None}


# --------------------------------------------------------------------------------------------- section 6


def utc_date(t: dt.datetime) -> dt.date:
    return t.astimezone(UTC).date()


def partner_code(a: dict) -> str | None:
    """The `ref` query parameter of landing_url (first value, blank = absent), else utm_content for a partner
    medium."""
    if a["landing_url"]:
        values = parse_qs(urlsplit(a["landing_url"]).query, keep_blank_values=True).get("ref")
        if values and values[0].strip():
            return values[0].strip()
    if a["utm_medium"] and a["utm_medium"].lower() in PARTNER_MEDIUMS and a["utm_content"]:
        return a["utm_content"].strip() or None
    return None


def touchpoints(raw: Raw, ident: Identity, rules: ProgramRules) -> list[dict]:
    tps: list[dict] = []

    def owner_of(code: str | None) -> str | None:
        link = raw.links.get(code) if code else None
        return link["partner_id"] if link and link["partner_id"] in raw.partners else None

    for r in raw.referrals.values():
        if r["status"] == "accepted" and r["partner_id"] in raw.partners:
            tps.append(
                dict(touch_id=f"ref:{r['referral_id']}", touch_type="referral", partner_id=r["partner_id"],
                     account_key=ident.referral(r), occurred_at=r["submitted_at"], referral_id=r["referral_id"])
            )  # fmt: skip
    for a in raw.activities:
        partner = owner_of(partner_code(a))
        if partner:
            tps.append(
                dict(touch_id=f"ma:{a['activity_id']}", touch_type="marketing", partner_id=partner,
                     account_key=ident.of_email(a["email"]), occurred_at=a["occurred_at"])
            )  # fmt: skip
    spam_groups: dict[tuple, int] = defaultdict(int)
    for c in raw.clicks:
        if c["ip_hash"]:
            spam_groups[(c["ip_hash"], c["link_code"], utc_date(c["clicked_at"]))] += 1
    spam_clicks = set()
    for c in raw.clicks:
        if c["ip_hash"]:
            day = utc_date(c["clicked_at"])
            if (
                spam_groups[(c["ip_hash"], c["link_code"], day)]
                > rules.version_at(day).max_clicks_per_ip_per_day
            ):
                spam_clicks.add(c["click_id"])
    for c in raw.clicks:
        partner = owner_of(c["link_code"])
        if partner:
            tps.append(
                dict(touch_id=f"clk:{c['click_id']}", touch_type="link_click", partner_id=partner,
                     account_key=ident.of_email(ident.visitor_email.get(c["visitor_id"])),
                     occurred_at=c["clicked_at"], spam=c["click_id"] in spam_clicks)
            )  # fmt: skip
    for t in tps:
        p = raw.partners[t["partner_id"]]
        at = t["occurred_at"]
        if at < p["joined_at"] or (p["terminated_at"] is not None and at >= p["terminated_at"]):
            t["exclusion_reason"] = "partner_not_active"
        elif t["account_key"] is not None and t["account_key"] in ident.partner_keys(p):
            t["exclusion_reason"] = "self_referral"
        elif t.get("spam"):
            t["exclusion_reason"] = "click_spam"
        else:
            t["exclusion_reason"] = None
    return tps


def exact_seconds(delta: dt.timedelta) -> Decimal:
    return Decimal(delta.days * 86400 + delta.seconds) + Decimal(delta.microseconds).scaleb(-6)


def _pow_half(seconds: Decimal, half_life_days: Decimal) -> Decimal:
    """0.5 ^ (seconds / half_life), computed as exp(-ln 2 * x) in the 40-digit context."""
    x = CTX.divide(seconds, CTX.multiply(half_life_days, Decimal(86400)))
    return CTX.exp(CTX.minus(CTX.multiply(CTX.ln(Decimal(2)), x)))


def model_weights(
    path: list[dict], created_at: dt.datetime, half_life_days: Decimal
) -> dict[str, list[Decimal]]:
    n = len(path)
    one, zero = Decimal(1), Decimal(0)
    w = {
        "first_touch": [one if i == 0 else zero for i in range(n)],
        "last_touch": [one if i == n - 1 else zero for i in range(n)],
        "linear": [CTX.divide(one, Decimal(n))] * n,
    }
    raw_w = [_pow_half(exact_seconds(created_at - t["occurred_at"]), half_life_days) for t in path]
    total = Decimal(0)
    for r in raw_w:
        total = CTX.add(total, r)
    w["time_decay"] = [CTX.divide(r, total) for r in raw_w]
    if n == 1:
        w["position_based"] = [one]
    elif n == 2:
        w["position_based"] = [Decimal("0.5")] * 2
    else:
        mid = CTX.divide(Decimal("0.2"), Decimal(n - 2))
        w["position_based"] = [Decimal("0.4")] + [mid] * (n - 2) + [Decimal("0.4")]
    return w


def is_won(d: dict) -> bool:
    return bool(d["is_won"]) and d["closed_at"] is not None and not d["is_deleted"]


def attribution(raw: Raw, ident: Identity, rules: ProgramRules, tps: list[dict]):
    """Returns (rows of fct_attribution, payout credit per deal: {deal_id: {partner_id: credit}})."""
    by_key: dict[str, list[dict]] = defaultdict(list)
    for t in tps:
        if t["exclusion_reason"] is None and t["account_key"] is not None:
            by_key[t["account_key"]].append(t)
    rows: list[dict] = []
    payout: dict[str, dict[str, Decimal]] = {}
    for deal_id, d in sorted(raw.deals.items()):
        v = rules.version_at(utc_date(d["created_at"]))
        key = None if d["is_deleted"] else ident.deal(d)
        created = d["created_at"]
        candidates = by_key.get(key, []) if key is not None else []
        path = [
            t
            for t in candidates
            if created - dt.timedelta(days=v.lookback_days[t["touch_type"]]) <= t["occurred_at"] <= created
        ]
        path.sort(key=lambda t: (t["occurred_at"], TYPE_ORDER[t["touch_type"]], t["touch_id"]))
        counts: dict[str, int] = defaultdict(int)
        for t in path:
            counts[t["partner_id"]] += 1
        credits: dict[str, dict[str, Decimal]] = {}
        if path:
            weights = model_weights(path, created, v.time_decay_half_life_days)
            for m in MODELS:
                c: dict[str, Decimal] = {p: Decimal(0) for p in counts}
                for t, wt in zip(path, weights[m], strict=True):
                    c[t["partner_id"]] = CTX.add(c[t["partner_id"]], wt)
                credits[m] = c
        if deal_id in raw.overrides:
            pay = dict(raw.overrides[deal_id])
        elif path:
            pay = credits[v.attribution_model]
        else:
            pay = {}
        pay = {p: c for p, c in pay.items() if c > 0}
        payout[deal_id] = pay
        won = is_won(d)
        for m in MODELS:
            for p in sorted(credits.get(m, {})):
                rows.append(dict(deal_id=deal_id, partner_id=p, model=m, credit=credits[m][p],
                                 touch_count=counts[p], is_won=won))  # fmt: skip
        for p in sorted(pay):
            rows.append(dict(deal_id=deal_id, partner_id=p, model="payout", credit=pay[p],
                             touch_count=counts.get(p, 0), is_won=won))  # fmt: skip
    return rows, payout


# --------------------------------------------------------------------------------------------- section 7


def month_start(t: dt.datetime) -> dt.date:
    return utc_date(t).replace(day=1)


def minus_12_months(m: dt.date) -> dt.date:
    return m.replace(year=m.year - 1)


def round_money(x: Decimal) -> Decimal:
    return x.quantize(CENT, rounding=ROUND_HALF_UP)


class Rewards:
    def __init__(self, raw: Raw, ident: Identity, rules: ProgramRules, tps: list[dict], payout: dict):
        self.raw, self.ident, self.rules, self.tps, self.payout = raw, ident, rules, tps, payout
        self.rates: dict[str, list[tuple[dt.date, Decimal]]] = defaultdict(list)
        for (day, cur), r in raw.fx.items():
            self.rates[cur].append((day, r["rate"]))
        for lst in self.rates.values():
            lst.sort()
        self.reversals: dict[str, list[dict]] = defaultdict(list)
        for r in raw.reversals:
            self.reversals[r["deal_id"]].append(r)
        self.base = {deal_id: self.commission_base(d) for deal_id, d in raw.deals.items() if is_won(d)}

    def rate(self, currency: str, day: dt.date) -> Decimal:
        if currency == self.rules.program_currency:
            return Decimal(1)
        best = None
        for rd, r in self.rates.get(currency, []):
            if rd <= day:
                best = r
        if best is None:
            raise ValueError(f"no fx rate for {currency} on or before {day}")
        return best

    def commission_base(self, d: dict) -> Decimal:
        v = self.rules.version_at(utc_date(d["closed_at"]))
        limit = d["closed_at"] + dt.timedelta(days=v.clawback_days)
        reversed_ = sum(
            (r["amount"] for r in self.reversals[d["deal_id"]] if r["occurred_at"] <= limit), Decimal(0)
        )
        net = max(Decimal(0), d["amount"] - reversed_)
        return CTX.divide(net, self.rate(d["currency"], utc_date(d["closed_at"])))

    def tier(self, partner_id: str, earned_at: dt.datetime, v: RulesVersion):
        m = month_start(earned_at)
        lo = minus_12_months(m)
        revenue = Decimal(0)
        for deal_id, base in self.base.items():
            d = self.raw.deals[deal_id]
            if d["deal_type"] in v.eligible_deal_types and lo <= utc_date(d["closed_at"]) < m:
                credit = self.payout.get(deal_id, {}).get(partner_id)
                if credit:
                    revenue = CTX.add(revenue, CTX.multiply(base, credit))
        chosen = None
        for t in v.tiers:
            if t.min_trailing_revenue <= revenue:
                chosen = t
        return chosen

    def event(self, event_type, partner_id, earned_at, amount_of, *, deal_id=None, referral_id=None):
        v = self.rules.version_at(utc_date(earned_at))
        tier = self.tier(partner_id, earned_at, v)
        amount = round_money(amount_of(v, tier))
        suffix = f"{referral_id}" if event_type == "referral_bonus" else f"{deal_id}:{partner_id}"
        return dict(
            event_id=f"{event_type}:{suffix}",
            event_type=event_type,
            partner_id=partner_id,
            deal_id=deal_id,
            referral_id=referral_id,
            amount=amount,
            earned_at=earned_at,
            payable_at=earned_at + dt.timedelta(days=v.hold_days[event_type]),
            tier=tier.name,
            rules_version=v.version_id,
        )

    def quality_lead(self, r: dict, key: str, v: RulesVersion) -> bool:
        if not key.startswith("domain:"):
            return False
        company = self.raw.companies.get(key[len("domain:") :])
        if company is None or company["employee_count"] is None:
            return False
        if company["employee_count"] < v.quality_min_employee_count:
            return False
        if (
            v.quality_eligible_countries
            and (company["country"] or "").upper() not in v.quality_eligible_countries
        ):
            return False
        for d in self.raw.deals.values():
            if is_won(d) and d["closed_at"] < r["submitted_at"] and self.ident.deal(d) == key:
                return False
        return True

    def events(self) -> list[dict]:
        out: list[dict] = []
        # referral_bonus: first accepted, not-excluded referral of its account key
        first: dict[str, dict] = {}
        for t in self.tps:
            if t["touch_type"] == "referral" and t["exclusion_reason"] is None:
                r = self.raw.referrals[t["referral_id"]]
                k = t["account_key"]
                if k not in first or (r["submitted_at"], r["referral_id"]) < (
                    first[k]["submitted_at"],
                    first[k]["referral_id"],
                ):
                    first[k] = r
        for key, r in first.items():
            if r["accepted_at"] is None:
                continue
            v = self.rules.version_at(utc_date(r["accepted_at"]))
            if self.quality_lead(r, key, v):
                out.append(
                    self.event("referral_bonus", r["partner_id"], r["accepted_at"],
                               lambda v, tier: tier.referral_bonus, referral_id=r["referral_id"])
                )  # fmt: skip
        # qualified_bonus: first entry into the qualified stage of the version in force at entered_at
        qualified: dict[str, dt.datetime] = {}
        for h in self.raw.stage_history:
            if h["stage"] == self.rules.version_at(utc_date(h["entered_at"])).qualified_stage:
                if h["deal_id"] not in qualified or h["entered_at"] < qualified[h["deal_id"]]:
                    qualified[h["deal_id"]] = h["entered_at"]
        for deal_id, at in sorted(qualified.items()):
            d = self.raw.deals.get(deal_id)
            if d is None or d["is_deleted"]:
                continue
            if d["deal_type"] not in self.rules.version_at(utc_date(at)).eligible_deal_types:
                continue
            for p, credit in sorted(self.payout.get(deal_id, {}).items()):
                out.append(
                    self.event("qualified_bonus", p, at,
                               lambda v, tier, c=credit: CTX.multiply(tier.qualified_bonus, c), deal_id=deal_id)
                )  # fmt: skip
        # commission: won deals of an eligible type
        for deal_id, base in sorted(self.base.items()):
            d = self.raw.deals[deal_id]
            at = d["closed_at"]
            if d["deal_type"] not in self.rules.version_at(utc_date(at)).eligible_deal_types:
                continue
            for p, credit in sorted(self.payout.get(deal_id, {}).items()):

                def amount(v, tier, c=credit, b=base):
                    x = CTX.multiply(CTX.multiply(b, tier.commission_rate), c)
                    cap = v.commission_cap_per_deal
                    return x if cap is None else min(cap, x)

                out.append(self.event("commission", p, at, amount, deal_id=deal_id))
        return out


# --------------------------------------------------------------------------------------------- entry point


@dataclass
class Reference:
    touchpoints: list[dict]
    attribution: list[dict]
    reward_events: list[dict]
    payout_credits: dict[str, dict[str, Decimal]]
    deals: dict[str, dict]  # latest deal records, with `won` and (for won deals) `commission_base` added


def compute(url: str, rules: ProgramRules) -> Reference:
    with psycopg.connect(url) as conn:
        raw = read_raw(conn)
    ident = Identity(raw, rules)
    tps = touchpoints(raw, ident, rules)
    rows, payout = attribution(raw, ident, rules, tps)
    rewards = Rewards(raw, ident, rules, tps, payout)
    events = rewards.events()
    deals = {k: {**d, "won": is_won(d), "commission_base": rewards.base.get(k)} for k, d in raw.deals.items()}
    public_tps = [
        {
            k: t[k]
            for k in (
                "touch_id",
                "touch_type",
                "partner_id",
                "account_key",
                "occurred_at",
                "exclusion_reason",
            )
        }
        for t in tps
    ]
    return Reference(public_tps, rows, events, payout, deals)
