"""Seeded, realistic sample exports for the landing zone, following the program rules of docs/rules.md.

`generate(out, start, days)` simulates a partner program over the window `[start, start + days)` and writes
what the source systems would have exported, in the landing layout
`{out}/{source}/{entity}/dt=YYYY-MM-DD/{entity}-part-NNNN.{csv|jsonl}[.gz]`:

- partners with links (types, payout currencies USD/EUR/GBP, a suspended, a terminated, a late-joining partner
  and partners without tax forms, with record updates on later days);
- accounts: companies (above and below 50 employees) with contacts, existing customers with older won deals;
- journeys: partners touch accounts by referrals, link clicks (visitors who convert later with an email at the
  account's domain) and marketing activities carrying a partner code (`?ref=CODE`, or `utm_content` with
  `utm_medium` partner/referral/affiliate); deals follow, walk through appointment, qualified, proposal and
  close won or lost; refunds and chargebacks arrive later; one deal is deleted;
- browsing traffic on partner links (most visitors convert, some never do), click-spam bursts from one IP,
  plenty of marketing activities without partner codes, and weekday fx rates for EUR and GBP (units per USD).

Events land in the partition of the UTC day they occurred; record versions on the UTC day of their
`updated_at`; everything older than the window (the CRM's history) lands in the first partition. Nothing after
the window is written.

The dirt of real exports is part of the output: duplicate event rows (within and across partitions), rows the
loader must reject (bad timestamp, bad enumeration, negative or zero amount, missing required field, invalid
email, a CSV row with the wrong number of fields, a JSONL line that is not an object), shuffled and extra
columns, gzipped files, partitions split over two files, emails and domains that need normalising, booleans as
TRUE/1/0 and timestamps with `Z`, other offsets or none. The summary lists every row that must be rejected.

Volume mode (`clicks_per_day`, `python -m referral_pipeline.generate --clicks-per-day N`): the browsing traffic
on partner links and the marketing activities without a partner code are written column-wise with numpy at about
N clicks a day, for benchmarks at scale (a year at 30,000 clicks a day in a few minutes); see `_Traffic` and
docs/performance.md. Without it, the output is the per-row generator's.

The output is a pure function of the arguments: the same arguments give byte-identical files.
"""

from __future__ import annotations

import bisect
import csv
import gzip
import io
import itertools
import json
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path

import numpy as np

from .entities import ENTITIES, ENTITIES_BY_PATH

SCALES = {"small": 1, "medium": 10, "large": 100, "xlarge": 1000}  # xlarge: use the volume mode
# Partners (8 per unit) where a scale does not scale them: xlarge is a program ten times as busy as large (accounts,
# journeys, referrals, deals, traffic) with large's 800 partners.
PARTNER_UNITS = {"xlarge": 100}

FREE_MAIL = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "proton.me")
FIRST = ("ana", "ben", "carla", "dev", "emma", "farid", "gina", "hugo", "ivan", "jon", "lena", "marco", "nia")
FIRST += ("omar", "paula", "quinn", "rosa", "sam", "tara", "umar", "vera", "wes", "yara", "zoe")
LAST = ("berg", "dubois", "garcia", "khan", "kim", "muller", "novak", "rossi", "silva", "smith", "tanaka")
WORDS = ("atlas", "blue", "cedar", "cloud", "harbor", "iron", "lumen", "maple", "north", "nova", "orbit")
WORDS += ("peak", "pine", "river", "stone", "summit", "swift", "vector", "willow", "wind", "zen")
TLDS = (".com", ".com", ".io", ".de", ".co.uk", ".fr")
COUNTRIES = ("US", "US", "US", "GB", "DE", "FR", "CA", "NL", "ES", "AU")
INDUSTRIES = ("software", "retail", "manufacturing", "logistics", "healthcare", "finance", "media")
AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2)",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X)",
    "Mozilla/5.0 (X11; Linux x86_64)",
)
REFERERS = ("", "", "https://blog.partner.example/post", "https://news.example.org/", "https://t.co/x1")
OFFSETS = tuple(timezone(timedelta(minutes=m)) for m in (120, -300, 540, 330, 60, -480))
# Decks (see `_Generator.draw`): deal currencies, deal outcomes, referral outcomes.
CURRENCIES = ("USD",) * 13 + ("EUR",) * 4 + ("GBP",) * 3
OUTCOMES = ("won",) * 11 + ("lost",) * 4 + ("open",) * 2 + ("unqualified",) * 3
REFERRAL_OUTCOMES = ("accepted",) * 7 + (
    "accepted_late",
    "accepted_late",
    "rejected",
    "rejected",
    "submitted",
    "submitted",
)
# Partner archetypes by partner number modulo 8: type, payout currency, share of the traffic.
ARCHETYPES = {
    1: ("integrator", "USD", 6.0),
    2: ("affiliate", "EUR", 4.0),
    3: ("integrator", "GBP", 2.0),  # loses its tax form during the window
    4: ("reseller", "GBP", 2.0),  # suspended during the window
    5: ("affiliate", "USD", 1.5),  # joins after the window starts
    6: ("customer", "USD", 1.0),  # a customer with a free-mail address and no company domain
    7: ("consultant", "EUR", 1.5),  # terminated during the window
    0: ("consultant", "USD", 1.5),  # never had a tax form on file
}
EXTRA_COLUMN = ("exported_by", "crm-sync")
SPAM_BURST = 25


@dataclass(eq=False)
class _Row:
    when: datetime  # sort key inside the partition (event time or updated_at)
    seq: int
    values: dict[str, str | None] | None  # None: `raw` is written as-is
    raw: str | None = None
    reject: str | None = None  # why the loader must reject the row
    duplicate: bool = False
    key: tuple[str, date] | None = None  # its partition


@dataclass(eq=False)
class _Link:
    code: str
    partner: _Partner
    created: datetime


@dataclass(eq=False)
class _Partner:
    id: str
    num: int
    name: str
    email: str
    domain: str | None
    joined: datetime
    weight: float
    links: list[_Link] = field(default_factory=list)


@dataclass(eq=False)
class _Contact:
    id: str
    email: str
    first: str
    last: str
    domain: str | None


@dataclass(eq=False)
class _Account:
    domain: str | None
    name: str
    contacts: list[_Contact]
    customer: bool = False


@dataclass(eq=False)
class _Deal:
    id: str
    amount: int
    currency: str
    created: datetime
    stages: list[tuple[str, datetime]]  # stage walk, the last one may be closed_won / closed_lost
    fields: dict[str, str | None]
    last: dict | None = None  # the last version written


class _Generator:
    def __init__(
        self, start: date, days: int, scale: str, seed: int, clicks_per_day: int | None = None
    ) -> None:
        if scale not in SCALES:
            raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
        if days < 1:
            raise ValueError(f"days must be >= 1, got {days}")
        if clicks_per_day is not None and clicks_per_day < 1:
            raise ValueError(f"clicks_per_day must be >= 1, got {clicks_per_day}")
        self.clicks_per_day = clicks_per_day
        self.f = SCALES[scale]
        self.pf = PARTNER_UNITS.get(scale, self.f)
        self.days = days
        self.start = start
        self.t0 = datetime.combine(start, time(), UTC)
        self.end = self.t0 + timedelta(days=days)
        self.seed = seed
        self.rng = random.Random(f"{seed}:world")
        self.fmt = random.Random(f"{seed}:format")
        self.parts: dict[tuple[str, date], list[_Row]] = defaultdict(list)
        self.seq = itertools.count()
        self.ids: dict[str, itertools.count] = defaultdict(lambda: itertools.count(1))
        self.domain_no = itertools.count()
        self.piles: dict[str, list[str]] = defaultdict(list)
        self.won: list[_Deal] = []
        self.qualified: list[_Deal] = []

    # ---- small helpers ----------------------------------------------------------------------------------

    def draw(self, name: str, deck: tuple[str, ...]) -> str:
        """The next card of a shuffled deck: shares hold exactly over every len(deck) draws."""
        pile = self.piles[name]
        if not pile:
            pile.extend(deck)
            self.rng.shuffle(pile)
        return pile.pop()

    def next_id(self, prefix: str, width: int) -> str:
        return f"{prefix}{next(self.ids[prefix]):0{width}d}"

    def at(self, frac: float, hour: int) -> datetime:
        """A time in the window: day `int(days * frac)` at `hour` plus some minutes."""
        return self.t0 + timedelta(days=int(self.days * frac), hours=hour, minutes=self.rng.randrange(60))

    def before(self) -> datetime:
        """A time in the CRM's history, before the window."""
        return self.t0 - timedelta(days=self.rng.randint(30, 400), hours=self.rng.randint(0, 23))

    def in_window(self, lo: float = 0.0, hi: float = 1.0) -> datetime:
        span = (self.end - self.t0).total_seconds()
        return self.t0 + timedelta(seconds=int(span * self.rng.uniform(lo, hi)))

    def later(self, t: datetime, lo_hours: float, hi_hours: float) -> datetime:
        return t + timedelta(seconds=int(3600 * self.rng.uniform(lo_hours, hi_hours)))

    def ts(self, t: datetime) -> str:
        """A timestamp as exports write it: mostly `Z`, some with another offset, some without one."""
        r = self.fmt.random()
        if r < 0.8:
            return t.strftime("%Y-%m-%dT%H:%M:%SZ")
        if r < 0.9:
            return t.astimezone(self.fmt.choice(OFFSETS)).isoformat(timespec="seconds")
        return t.strftime("%Y-%m-%dT%H:%M:%S")

    def email(self, e: str) -> str:
        r = self.fmt.random()
        if r < 0.04:
            return e.upper()
        if r < 0.07:
            return e[0].upper() + e[1:]
        if r < 0.09:
            return f" {e} "
        return e

    def domain(self, d: str | None) -> str | None:
        r = self.fmt.random()
        if d is None or r < 0.85:
            return d
        if r < 0.92:
            return f"www.{d}"
        if r < 0.96:
            return f"  WWW.{d.upper()} "
        return d.upper()

    def bool(self, b: bool) -> str:
        style = self.fmt.choices(
            (("true", "false"), ("TRUE", "FALSE"), ("1", "0"), ("True", "False")), (6, 2, 2, 1)
        )
        return style[0][0 if b else 1]

    def put(
        self, path: str, when: datetime, values: dict | None, *, day: date | None = None, **kw
    ) -> _Row | None:
        """Add a row to the partition of `when`'s UTC day (history before the window: the first day)."""
        if when >= self.end:
            return None
        key = (path, day or max(self.start, when.date()))
        row = _Row(when, next(self.seq), values, key=key, **kw)
        self.parts[key].append(row)
        return row

    def person(self, domain: str | None, n: int) -> tuple[str, str, str]:
        first, last = self.rng.choice(FIRST), self.rng.choice(LAST)
        if domain:
            return first, last, f"{first}.{last}{n}@{domain}"
        return first, last, f"{first}{last}{n}@{self.rng.choice(FREE_MAIL)}"

    def new_domain(self) -> tuple[str, str]:
        n = next(self.domain_no)
        name = f"{self.rng.choice(WORDS)}{self.rng.choice(WORDS)}{n}"
        return f"{name}{self.rng.choice(TLDS)}", name.capitalize()

    # ---- partners and links -----------------------------------------------------------------------------

    def partners(self) -> None:
        self.partner_list: list[_Partner] = []
        for num in range(1, 8 * self.pf + 1):
            arch = num % 8
            ptype, currency, weight = ARCHETYPES[arch]
            w1, w2 = self.rng.choice(WORDS), self.rng.choice(WORDS)
            first, last = self.rng.choice(FIRST), self.rng.choice(LAST)
            domain = None if arch == 6 else f"{w1}{w2}-partners{num}.com"
            email = f"{first}{last}{num}@gmail.com" if arch == 6 else f"{first}.{last}@{domain}"
            if arch == 5:
                joined = self.at(0.15, 9)
            else:
                joined = self.t0 - timedelta(days=self.rng.randint(20, 400), hours=self.rng.randint(0, 23))
            p = _Partner(
                f"PTR-{num:04d}", num, f"{w1.capitalize()}{w2} Partners {num}", email, domain, joined, weight
            )
            self.partner_list.append(p)
            rec = {
                "partner_id": p.id,
                "name": p.name,
                "email": self.email(email),
                "company_domain": self.domain(domain),
                "partner_type": ptype,
                "status": "active",
                "joined_at": self.ts(joined),
                "terminated_at": None,
                "payout_currency": currency,
                "tax_form_on_file": self.bool(arch != 0),
                "country": self.rng.choice(COUNTRIES),
            }
            self.record("crm/partners", rec, self.t0 - timedelta(hours=self.rng.randint(1, 900)))
            if arch == 3:
                self.record("crm/partners", rec | {"tax_form_on_file": self.bool(False)}, self.at(0.4, 12))
            elif arch == 4:
                self.record("crm/partners", rec | {"status": "suspended"}, self.at(0.5, 14))
            elif arch == 7:
                terminated = self.at(0.45, 10)
                rec.update(status="terminated", terminated_at=self.ts(terminated))
                self.record("crm/partners", rec, self.later(terminated, 0, 2))
            for _ in range(1 + num % 2):
                self.link(p, p.joined - timedelta(days=1), day=self.start)
            if arch == 1:  # a campaign link created during the window
                self.link(p, self.at(0.33, 8))
        self.cum_weights = list(itertools.accumulate(p.weight for p in self.partner_list))

    def link(self, p: _Partner, created: datetime, day: date | None = None) -> None:
        code = f"{p.num:04d}" + "".join(self.rng.choices("abcdefghjkmnpqrstuvwxyz23456789", k=4))
        link = _Link(code, p, created)
        p.links.append(link)
        row = {
            "link_code": code,
            "partner_id": p.id,
            "destination_url": f"https://www.example.com/?ref={code}",
            "created_at": self.ts(created),
        }
        self.put("links/links", created, row, day=day)

    def pick_partner(self, exclude: _Partner | None = None) -> _Partner:
        while True:
            i = bisect.bisect(self.cum_weights, self.rng.random() * self.cum_weights[-1])
            p = self.partner_list[min(i, len(self.partner_list) - 1)]
            if p is not exclude or len(self.partner_list) == 1:
                return p

    def pick_link(self, p: _Partner, t: datetime) -> _Link:
        usable = [link for link in p.links if link.created <= t] or p.links[:1]
        return self.rng.choice(usable)

    # ---- accounts: companies and contacts ---------------------------------------------------------------

    def account(self, *, customer: bool, free_mail: bool = False, known_at: datetime) -> _Account:
        """An account with its company record (most of them) and one or two contacts."""
        domain, name = (None, "") if free_mail else self.new_domain()
        acct = _Account(domain, name, [], customer)
        if domain and (customer or self.rng.random() < 0.9):
            small = not customer and self.rng.random() < 0.3
            employees = self.rng.randint(5, 49) if small else self.rng.choice((50, *range(51, 3000, 7)))
            rec = {
                "company_domain": self.domain(domain),
                "name": name,
                "employee_count": str(employees),
                "country": self.rng.choice(COUNTRIES),
                "industry": self.rng.choice(INDUSTRIES),
            }
            self.record("crm/companies", rec, known_at)
            if self.rng.random() < 0.1:
                rec["employee_count"] = str(employees + self.rng.randint(-20, 200))
                self.record("crm/companies", rec, self.in_window(0.3, 1))
        for _ in range(1 + (self.rng.random() < 0.3)):
            n = next(self.ids["person"])
            first, last, email = self.person(domain, n % 10)
            contact = _Contact(self.next_id("C-", 7), email, first, last, domain)
            acct.contacts.append(contact)
            created = known_at - timedelta(hours=self.rng.randint(0, 30))
            rec = {
                "contact_id": contact.id,
                "email": self.email(email),
                "first_name": first.capitalize(),
                "last_name": last.capitalize(),
                "company_domain": self.domain(domain),
                "created_at": self.ts(created),
                "is_deleted": self.fmt.choice((None, None, None, self.bool(False))),
            }
            self.record("crm/contacts", rec, created)
            r = self.rng.random()
            if r < 0.1:  # a correction; sometimes two versions with the same updated_at (the later wins)
                t = self.in_window(0.2, 1)
                if r < 0.02:
                    self.record("crm/contacts", rec | {"last_name": last.upper()}, t)
                rec["last_name"] = f"{last.capitalize()}-{self.rng.choice(LAST).capitalize()}"
                self.record("crm/contacts", rec, t)
            elif r < 0.13:
                self.record(
                    "crm/contacts",
                    rec | {"is_deleted": self.fmt.choice(("TRUE", "1"))},
                    self.in_window(0.3, 1),
                )
        return acct

    def record(self, path: str, rec: dict, updated: datetime) -> _Row | None:
        """A record version as of `updated` (its `updated_at`)."""
        return self.put(path, updated, rec | {"updated_at": self.ts(updated)})

    # ---- deals --------------------------------------------------------------------------------------------

    def deal(
        self,
        acct: _Account,
        created: datetime,
        deal_type: str,
        *,
        history: bool = False,
        no_account: bool = False,
    ) -> _Deal | None:
        """A deal walking through its stages; record versions and stage history up to the window's end."""
        if created >= self.end:
            return None
        deal_id = self.next_id("D-", 6)
        amount = self.rng.randint(5, 200) * 1000
        currency = "USD" if history else self.draw("currency", CURRENCIES)
        stages = [("appointment", created)]
        outcome = "won" if history else self.draw("outcome", OUTCOMES)
        if outcome != "unqualified":
            stages.append(("qualified", self.later(created, 20, 24 * 8)))
            if not history and self.rng.random() < 0.6:
                stages.append(("proposal", self.later(stages[-1][1], 30, 24 * 7)))
            if outcome in ("won", "lost"):
                stages.append((f"closed_{outcome}", self.later(stages[-1][1], 48, 24 * 14)))
        contact = acct.contacts[0]
        name = acct.name or f"{contact.first.capitalize()} {contact.last.capitalize()}"
        deal_name = f'{name}, "{deal_type}" {deal_id}' if self.rng.random() < 0.2 else f"{name} - {deal_type}"
        fields = {
            "deal_id": deal_id,
            "primary_contact_id": contact.id if self.rng.random() < 0.95 or not acct.domain else None,
            "company_domain": self.domain(acct.domain) if self.rng.random() < 0.8 else None,
            "deal_name": deal_name,
            "deal_type": deal_type,
            "amount": f"{amount}.00",
            "currency": currency.lower() if self.fmt.random() < 0.03 else currency,
            "created_at": self.ts(created),
            "is_deleted": None,
        }
        if no_account:
            fields.update(primary_contact_id=None, company_domain=None)
        elif fields["primary_contact_id"] is None and fields["company_domain"] is None:
            fields["company_domain"] = acct.domain
        d = _Deal(deal_id, amount, currency, created, stages, fields)
        self.write_deal(d)
        return d

    def write_deal(self, d: _Deal) -> None:
        for stage, entered in d.stages:
            if entered >= self.end:
                break
            closed = stage.startswith("closed_")
            rec = d.fields | {
                "stage": stage,
                "closed_at": self.ts(entered) if closed else None,
                "is_won": self.bool(stage == "closed_won"),
            }
            d.last = rec
            self.record("crm/deals", rec, self.later(entered, 0, 0.02))
            self.put(
                "crm/deal_stage_history",
                entered,
                {"deal_id": d.id, "stage": stage, "entered_at": self.ts(entered)},
            )
            if stage == "qualified" and d.fields["deal_type"] == "new_business":
                self.qualified.append(d)
            if stage == "closed_won":
                self.won.append(d)

    def delete_deal(self, d: _Deal, t: datetime) -> None:
        self.record("crm/deals", d.last | {"is_deleted": self.fmt.choice(("TRUE", "1", "true"))}, t)

    def reversal(self, d: _Deal, kind: str, amount: int, t: datetime) -> _Row | None:
        row = {
            "reversal_id": self.next_id("REV-", 6),
            "deal_id": d.id,
            "reversal_type": kind,
            "amount": f"{amount}.00",
            "occurred_at": self.ts(t),
        }
        return self.put("crm/deal_reversals", t, row)

    # ---- touches ------------------------------------------------------------------------------------------

    def referral(
        self, p: _Partner, email: str, domain: str | None, t: datetime, status: str | None = None
    ) -> None:
        status = status or self.draw("referral", REFERRAL_OUTCOMES)
        rec = {
            "referral_id": self.next_id("REF-", 6),
            "partner_id": p.id,
            "contact_email": self.email(email),
            "company_domain": self.domain(domain),
            "submitted_at": self.ts(t),
            "status": "submitted",
            "accepted_at": None,
        }
        self.record("crm/referrals", rec, t)
        if status == "submitted":
            return
        decided = self.later(t, 2, 72)
        rec["status"] = status
        if status == "accepted_late":  # accepted, and accepted_at arrives in a later update
            rec["status"] = status = "accepted"
            self.record("crm/referrals", rec, decided)
            decided = self.later(decided, 20, 96)
        if status == "accepted":
            rec["accepted_at"] = self.ts(decided)
        self.record("crm/referrals", rec, decided)

    def visitor(self, link: _Link, t: datetime, clicks: int, email: str | None) -> None:
        vid = self.next_id("v-", 7)
        ip = self.ip() if self.rng.random() < 0.9 else None
        country = self.rng.choice(COUNTRIES)
        last = t
        for _ in range(clicks):
            self.click(link, last, vid, ip, country)
            last = self.later(last, 0.05, 30)
        if email:
            cv = self.later(last, 0.2, 48)
            self.conversion(vid, email, cv)
            if self.rng.random() < 0.05:  # a second conversion later: the earliest one names the visitor
                self.conversion(vid, self.person(None, 9)[2], self.later(cv, 24, 200))

    def click(
        self, link: _Link, t: datetime, vid: str, ip: str | None, country: str, agent: str = ""
    ) -> _Row | None:
        row = {
            "click_id": self.next_id("clk-", 8),
            "link_code": link.code,
            "clicked_at": self.ts(t),
            "visitor_id": vid,
            "user_agent": agent or self.rng.choice(AGENTS),
            "country": country,
            "referer_url": self.rng.choice(REFERERS),
            "ip_address": ip,
        }
        return self.put("links/clicks", t, row)

    def conversion(self, vid: str, email: str, t: datetime) -> None:
        row = {
            "conversion_id": self.next_id("cv-", 7),
            "visitor_id": vid,
            "email": self.email(email),
            "event": self.rng.choice(("signup", "lead", "lead")),
            "converted_at": self.ts(t),
        }
        self.put("links/conversions", t, row)

    def ip(self) -> str:
        return ".".join(str(self.rng.randint(1, 254)) for _ in range(4))

    def activity(self, email: str, t: datetime, code: str | None = None, style: str = "") -> None:
        """A marketing activity; with `code`, one that carries a partner code.

        Partner codes: see docs/rules.md, Touchpoints and exclusions.
        """
        page = self.rng.choice(("pricing", "demo", "webinar", "blog/partners", ""))
        utm = {"utm_source": None, "utm_medium": None, "utm_campaign": None, "utm_content": None}
        if code is None:
            source, medium = self.rng.choice(
                (
                    ("google", "cpc"),
                    ("linkedin", "social"),
                    ("newsletter", "email"),
                    (None, None),
                    ("bing", "cpc"),
                )
            )
            utm.update(
                utm_source=source, utm_medium=medium, utm_campaign=self.rng.choice((None, "q1", "brand"))
            )
            if medium == "cpc" and self.rng.random() < 0.1:
                utm["utm_content"] = "ad-variant-b"
            url = f"https://www.example.com/{page}" + (f"?utm_source={source}" if source else "")
        else:
            style = style or self.rng.choices(("ref", "repeated", "utm"), (45, 15, 40))[0]
            if style == "ref":
                url = f"https://www.example.com/{page}?ref={code}"
            elif style == "repeated":  # a repeated parameter: the first value counts
                url = f"https://www.example.com/demo?lang=en&ref={code}&ref=other"
                utm.update(utm_source="partner", utm_medium="cpc")
            else:
                medium = self.rng.choice(
                    ("partner", "Partner", "referral", "Referral", "affiliate", "AFFILIATE")
                )
                content = f" {code} " if self.rng.random() < 0.1 else code
                utm.update(
                    utm_source="partner-site", utm_medium=medium, utm_campaign="partners", utm_content=content
                )
                url = f"https://www.example.com/{page}" + (
                    "?ref=&lang=en" if self.rng.random() < 0.15 else ""
                )
        row = {
            "activity_id": self.next_id("ACT-", 7),
            "email": self.email(email),
            "activity_type": self.rng.choice(
                ("form_fill", "email_click", "webinar_attended", "content_download")
            ),
            "occurred_at": self.ts(t),
            **utm,
            "landing_url": url,
        }
        self.put("marketing/activities", t, row)

    def touch(self, p: _Partner, acct: _Account, t: datetime) -> None:
        contact = self.rng.choice(acct.contacts)
        kind = self.rng.choices(("referral", "click", "marketing"), (45, 35, 20))[0]
        if kind == "referral":
            self.referral(p, contact.email, acct.domain, t)
        elif kind == "click":
            self.visitor(self.pick_link(p, t), t, self.rng.randint(1, 3), contact.email)
        else:
            self.activity(contact.email, t, self.pick_link(p, t).code)

    # ---- the simulation -----------------------------------------------------------------------------------

    def simulate(self) -> None:
        rng, f, days = self.rng, self.f, self.days
        self.partners()

        # Existing customers: older won deals (history), some expand or renew during the window.
        customers = []
        for i in range(8 * f):
            acct = self.account(customer=True, known_at=self.before())
            customers.append(acct)
            self.deal(
                acct,
                self.t0 - timedelta(days=rng.randint(140, 330), hours=rng.randint(0, 23)),
                "new_business",
                history=True,
            )
            if i % 2 == 0:
                self.deal(acct, self.in_window(0, 0.85), "renewal" if i % 4 == 2 else "expansion")
        history_won = list(self.won)

        # Prospects: partners touch them, deals follow.
        journeys = []
        for _ in range(max(2, round(55 * f * days / 60))):
            first = self.in_window(0, 0.8)
            acct = self.account(
                customer=False,
                free_mail=rng.random() < 0.06,
                known_at=first - timedelta(hours=rng.randint(1, 24)) if rng.random() < 0.5 else self.before(),
            )
            journeys.append(acct)
            touched, last = [], first
            for i in range(rng.choices((0, 1, 2, 3), (6, 70, 20, 4))[0]):
                p = self.pick_partner(exclude=touched[-1] if touched else None)
                last = first if i == 0 else self.later(last, 12, 24 * 8)
                self.touch(p, acct, last)
                touched.append(p)
            for _ in range(rng.choice((0, 1, 1, 2, 3))):
                self.activity(rng.choice(acct.contacts).email, max(self.t0, self.later(first, -240, 24 * 20)))
            if rng.random() < (0.4 if touched else 0.25):
                self.deal(acct, self.later(last, 2, 24 * 12), "new_business")

        # Browsing traffic on partner links: most visitors convert, mostly at an account's domain.
        prospects = [self.new_domain()[0] for _ in range(max(5, round(40 * f * days / 60)))]
        contacts = [c.email for a in journeys for c in a.contacts]
        self.prospects, self.contacts = prospects, contacts
        for day in range(days if self.clicks_per_day is None else 0):  # volume mode: `_Traffic` writes it
            for _ in range(8 * f):
                t = self.t0 + timedelta(days=day, seconds=rng.randrange(86400))
                link = self.pick_link(self.pick_partner(), t)
                r = rng.random()
                if r < 0.12:
                    email = rng.choice(contacts)
                elif r < 0.55:
                    email = self.person(rng.choice(prospects), rng.randrange(20))[2]
                elif r < 0.7:
                    email = self.person(None, rng.randrange(100))[2]
                else:
                    email = None
                self.visitor(link, t, rng.choice((1, 1, 2, 3, 4, 5, 6)), email)
            for _ in range(2 * f):
                email = (
                    rng.choice(contacts) if rng.random() < 0.5 else self.person(rng.choice(prospects), 1)[2]
                )
                self.activity(email, self.t0 + timedelta(days=day, seconds=rng.randrange(86400)))

        self.specials(customers, journeys, history_won)
        self.fx_rates()

    def specials(self, customers: list[_Account], journeys: list[_Account], history_won: list[_Deal]) -> None:
        """The cases every dataset should exercise, placed so they fit any window."""
        rng, f = self.rng, self.f
        end = self.end
        for block in range(f):
            # Click spam: 25 clicks from one ip on one link within an hour (spam), and exactly 20 plus a
            # re-delivered duplicate (not spam once the duplicate is dropped).
            for size, frac in ((SPAM_BURST, 0.2), (20, 0.6)):
                p = self.pick_partner()
                t, ip = self.at(min(0.99, frac + rng.random() * 0.2), rng.randint(0, 21)), self.ip()
                link = self.pick_link(p, t)
                rows = [
                    self.click(
                        link, t + timedelta(seconds=97 * i), self.next_id("bv-", 7), ip, "US", "curl/8.4.0"
                    )
                    for i in range(size)
                ]
                if size == 20 and rows[5] is not None:
                    self.duplicate(rows[5], same_partition=True)
            # Partner codes in marketing activities: each way of carrying one, and an unknown code.
            for style in ("ref", "repeated", "utm"):
                acct = rng.choice(journeys)
                t = self.in_window(0, 0.8)
                self.activity(acct.contacts[0].email, t, self.pick_link(self.pick_partner(), t).code, style)
            self.activity(rng.choice(journeys).contacts[0].email, self.in_window(), f"zz{block:02d}nope")
            # Self-referrals: a partner's own domain and a free-mail partner's own email.
            p = self.partner_list[8 * (block % self.pf)]  # archetype 1, with a company domain
            self.referral(p, f"buyer{block}@{p.domain}", p.domain, self.in_window(0, 0.5), "accepted")
            p6 = self.partner_list[min(8 * (block % self.pf) + 5, len(self.partner_list) - 1)]
            self.referral(p6, p6.email, None, self.in_window(0, 0.5), "accepted")
            # An existing customer referred again.
            acct = customers[block % len(customers)]
            self.referral(
                self.pick_partner(), acct.contacts[0].email, acct.domain, self.in_window(0, 0.6), "accepted"
            )
        # A reversal of a deal won long before the window: outside the clawback window, changes nothing.
        if history_won:
            self.reversal(history_won[0], "refund", history_won[0].amount // 5, self.at(0.1, 15))
        # A deal with no account key.
        self.deal(rng.choice(journeys), self.in_window(0, 0.5), "new_business", no_account=True)
        # Reversals on won deals of the window: a partial refund delivered twice, a refund plus a chargeback
        # above the amount, and some more partial refunds.
        won = sorted(
            (
                d
                for d in self.won
                if d not in history_won
                and d.fields["deal_type"] == "new_business"
                and d.stages[-1][1] < end - timedelta(hours=6)
            ),
            key=lambda d: d.stages[-1][1],
        )
        for i, d in enumerate(won):
            closed = d.stages[-1][1]
            room = (end - closed).total_seconds() / 3600 - 1
            if i == 0:
                row = self.reversal(d, "refund", d.amount // 10, self.later(closed, 1, min(24 * 12, room)))
                if row is not None:
                    self.duplicate(row)
            elif i == 1:
                first = self.later(closed, 1, min(24 * 5, room / 2))
                self.reversal(d, "refund", d.amount * 6 // 10, first)
                self.reversal(d, "chargeback", d.amount // 2, self.later(first, 1, min(24 * 5, room / 2)))
            elif rng.random() < 0.08:
                kind = rng.choice(("refund", "cancellation", "chargeback"))
                self.reversal(
                    d, kind, d.amount * rng.randint(5, 40) // 100, self.later(closed, 1, min(24 * 40, room))
                )
        # A qualified new-business deal deleted later.
        for d in self.qualified:
            if d in history_won or d.fields["primary_contact_id"] is None:
                continue
            last = max(t for _, t in d.stages if t < end)
            if last < end - timedelta(hours=3):
                self.delete_deal(
                    d, self.later(last, 1, min(24 * 20, (end - last).total_seconds() / 3600 - 1))
                )
                break

    def fx_rates(self) -> None:
        """Weekday rates for EUR and GBP (units per USD), plus the last weekday before the window."""
        day = self.start - timedelta(days=1)
        while day.weekday() >= 5:
            day -= timedelta(days=1)
        rates = {"EUR": 92000, "GBP": 79000}  # in 1e-5
        while day < self.start + timedelta(days=self.days):
            if day.weekday() < 5:
                for cur in rates:
                    rates[cur] += self.rng.randint(-400, 400)
                    code = cur.lower() if (day - self.start).days == 2 and cur == "GBP" else cur
                    row = {
                        "rate_date": day.isoformat(),
                        "currency": code,
                        "rate": f"0.{rates[cur]:05d}{self.rng.randrange(10)}",
                    }
                    self.put(
                        "finance/fx_rates",
                        datetime.combine(day, time(16), UTC),
                        row,
                        day=max(day, self.start),
                    )
            day += timedelta(days=1)

    # ---- dirt ---------------------------------------------------------------------------------------------

    def duplicate(self, row: _Row, same_partition: bool = False) -> None:
        """Deliver an event row again: in the same partition, or the next day's when there is one."""
        path, day = row.key
        nxt = day + timedelta(days=1)
        if not same_partition and nxt < self.start + timedelta(days=self.days):
            key, when = (path, nxt), datetime.combine(nxt, time(), UTC)
        else:
            key, when = row.key, row.when
        self.parts[key].append(_Row(when, next(self.seq), dict(row.values), duplicate=True, key=key))

    def dirt(self) -> None:
        """Duplicate event rows and rows the loader must reject, on a fixed day of the window."""
        rng = random.Random(f"{self.seed}:dirt")
        for path, share in (
            ("links/clicks", 0.006),
            ("marketing/activities", 0.01),
            ("links/conversions", 0.01),
        ):
            rows = sorted(
                (r for (p, _), rs in self.parts.items() if p == path for r in rs if not r.duplicate),
                key=lambda r: r.seq,
            )
            for i, row in enumerate(
                rng.sample(rows, max(2, round(len(rows) * share)) if len(rows) >= 2 else len(rows))
            ):
                self.duplicate(row, same_partition=i % 2 == 0)
        history = sorted(
            (r for (p, _), rs in self.parts.items() if p == "crm/deal_stage_history" for r in rs),
            key=lambda r: r.seq,
        )
        if history:
            self.duplicate(history[len(history) // 2])

        day = self.start + timedelta(days=min(6, self.days - 1))
        t = datetime.combine(day, time(20, 39, 17), UTC)
        stamp = t.strftime("%Y-%m-%dT%H:%M:%SZ")
        bad = self.reject_row
        p = self.partner_list[0]
        bad(
            "crm/partners",
            day,
            "updated_at: not a valid timestamp",
            {
                "partner_id": p.id,
                "name": p.name,
                "email": p.email,
                "company_domain": p.domain,
                "partner_type": "integrator",
                "status": "suspended",
                "joined_at": self.ts(p.joined),
                "payout_currency": "USD",
                "tax_form_on_file": "1",
                "updated_at": f"{day.year}-02-30T10:00:00Z",
            },
        )
        bad(
            "crm/companies",
            day,
            "company_domain: required",
            {
                "company_domain": None,
                "name": "No domain",
                "employee_count": "12",
                "country": "US",
                "updated_at": stamp,
            },
        )
        bad(
            "crm/companies",
            day,
            "employee_count: not an integer",
            {"company_domain": "badcount.com", "name": "Bad", "employee_count": "12.5", "updated_at": stamp},
        )
        contact = {
            "first_name": None,
            "last_name": None,
            "company_domain": None,
            "created_at": stamp,
            "updated_at": stamp,
        }
        bad(
            "crm/contacts",
            day,
            "email: no @",
            contact | {"contact_id": "C-BAD01", "email": "no-at-sign.example.com"},
        )
        bad(
            "crm/contacts",
            day,
            "email: no dot in domain",
            contact | {"contact_id": "C-BAD02", "email": "user@localhost"},
        )
        deal = {
            "deal_id": "D-BAD01",
            "company_domain": "bad.com",
            "deal_name": "bad",
            "deal_type": "new_business",
            "stage": "appointment",
            "amount": "100",
            "currency": "USD",
            "created_at": stamp,
            "is_won": "false",
            "updated_at": stamp,
        }
        bad("crm/deals", day, "amount: negative", deal | {"amount": "-500.00"})
        bad("crm/deals", day, "deal_id: required", deal | {"deal_id": None})
        bad(
            "crm/deals",
            day,
            "deal_type: not an enumeration value",
            deal | {"deal_id": "D-BAD02", "deal_type": "upsell"},
        )
        bad(
            "crm/deal_stage_history",
            day,
            "entered_at: not a timestamp",
            {"deal_id": "D-BAD01", "stage": "qualified", "entered_at": "yesterday"},
        )
        rev = {
            "reversal_id": "REV-BAD01",
            "deal_id": "D-BAD01",
            "reversal_type": "refund",
            "occurred_at": stamp,
        }
        bad("crm/deal_reversals", day, "amount: negative", rev | {"amount": "-100.00"})
        bad("crm/deal_reversals", day, "amount: zero", rev | {"reversal_id": "REV-BAD02", "amount": "0"})
        ref = {
            "referral_id": "REF-BAD01",
            "partner_id": p.id,
            "submitted_at": stamp,
            "status": "submitted",
            "updated_at": stamp,
        }
        bad("crm/referrals", day, "contact_email: two @", ref | {"contact_email": "jane.doe@@corp.com"})
        bad(
            "crm/referrals",
            day,
            "status: not an enumeration value",
            ref | {"referral_id": "REF-BAD02", "contact_email": "ok@corp.com", "status": "pending"},
        )
        bad(
            "finance/fx_rates",
            day,
            "rate: zero",
            {"rate_date": day.isoformat(), "currency": "JPY", "rate": "0"},
        )
        code = p.links[0].code
        bad(
            "links/clicks",
            day,
            "clicked_at: not a timestamp",
            {
                "click_id": "clk-BAD01",
                "link_code": code,
                "clicked_at": f"{day.year}-13-45T25:00:00Z",
                "visitor_id": "v-bad",
            },
        )
        bad(
            "links/clicks",
            day,
            "visitor_id: required",
            {"click_id": "clk-BAD02", "link_code": code, "clicked_at": stamp},
        )
        bad(
            "links/conversions",
            day,
            "event: not an enumeration value",
            {
                "conversion_id": "cv-BAD01",
                "visitor_id": "v-bad",
                "email": "x@y.com",
                "event": "purchase",
                "converted_at": stamp,
            },
        )
        bad(
            "links/conversions",
            day,
            "not a JSON object",
            None,
            raw='["cv-BAD02", "v-bad", "x@y.com", "lead"]',
        )
        bad(
            "marketing/activities",
            day,
            "activity_type: not an enumeration value",
            {
                "activity_id": "ACT-BAD01",
                "email": "a@b.com",
                "activity_type": "page_view",
                "occurred_at": stamp,
            },
        )
        bad("marketing/activities", day, "wrong number of fields", None, raw="ACT-BAD02,a@b.com,form_fill")

    def reject_row(
        self, path: str, day: date, reason: str, values: dict | None, raw: str | None = None
    ) -> None:
        # Appended after the day's rows (the sort key is the end of the day).
        when = datetime.combine(day, time(23, 59, 59), UTC)
        self.parts[(path, day)].append(_Row(when, next(self.seq), values, raw=raw, reject=reason))

    # ---- writing ------------------------------------------------------------------------------------------

    def write(self, out: Path, log: Callable[[str], None]) -> dict:
        rows_per_entity: dict[str, int] = defaultdict(int)
        rejects, files, duplicates = [], 0, 0
        volume = _Traffic(self, self.clicks_per_day, log) if self.clicks_per_day is not None else None
        if volume is not None:  # the browsing entities, day by day, merged with the simulation's rows
            for path, rows, dups, found in volume.write(out):
                rows_per_entity[path] += rows
                duplicates += dups
                rejects += found
        for ent in ENTITIES:
            if volume is not None and ent.path in _Traffic.PATHS:
                keys = list((out / ent.path).glob("dt=*"))
                files += len(list((out / ent.path).glob("dt=*/*")))
                log(f"  {ent.path:<24} {rows_per_entity[ent.path]:>8} rows in {len(keys)} partitions")
                continue
            keys = sorted(k for k in self.parts if k[0] == ent.path)
            for key in keys:
                rows = sorted(self.parts[key], key=lambda r: (r.when, r.seq))
                for rel, line, row in self.write_partition(out, ent.path, key[1], rows):
                    if row.reject:
                        rejects.append({"file": rel, "line": line, "reason": row.reject})
                rows_per_entity[ent.path] += len(rows)
                duplicates += sum(r.duplicate for r in rows)
            files += len(list((out / ent.path).glob("dt=*/*"))) if keys else 0
            log(f"  {ent.path:<24} {rows_per_entity[ent.path]:>8} rows in {len(keys)} partitions")
        return {
            "files": files,
            "rows": dict(rows_per_entity),
            "duplicate_rows": duplicates,
            "dirty_rows": len(rejects),
            "rejects": sorted(rejects, key=lambda r: (r["file"], r["line"])),
        }

    def partition_style(self, path: str, day: date, rows: int) -> tuple[bool, bool, list[str], bool]:
        """How a partition's export looks: gzipped, split over two files, its column order (CSV columns are
        sometimes shuffled), an extra column. A pure function of the seed, the entity and the day."""
        ent = ENTITIES_BY_PATH[path]
        rng = random.Random(f"{self.seed}:{path}:{day}")
        gz = rng.random() < 0.15
        split = rows >= 4 and rng.random() < 0.1
        columns = [c.name for c in ent.columns]
        if ent.format == "csv" and rng.random() < 0.12:
            rng.shuffle(columns)
        extra = rng.random() < 0.06
        return gz, split, columns, extra

    def write_partition(self, out: Path, path: str, day: date, rows: list[_Row]):
        """Write one partition (one or two files); yields (relative file, line number, row) for every row."""
        ent = ENTITIES_BY_PATH[path]
        gz, split, columns, extra = self.partition_style(path, day, len(rows))
        chunks = [rows[: len(rows) // 2], rows[len(rows) // 2 :]] if split else [rows]
        folder = out / path / f"dt={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        for n, chunk in enumerate(chunks):
            name = f"{ent.name}-part-{n:04d}.{ent.format}" + (".gz" if gz else "")
            buf = io.StringIO()
            if ent.format == "csv":
                writer = csv.writer(buf, lineterminator="\n")
                writer.writerow(columns + [EXTRA_COLUMN[0]] * extra)
                for line, row in enumerate(chunk, start=2):
                    if row.raw is not None:
                        buf.write(row.raw + "\n")
                    else:
                        writer.writerow(
                            [row.values.get(c) or "" for c in columns] + [EXTRA_COLUMN[1]] * extra
                        )
                    yield f"{path}/dt={day.isoformat()}/{name}", line, row
            else:
                for line, row in enumerate(chunk, start=1):
                    if row.raw is not None:
                        buf.write(row.raw + "\n")
                    else:
                        buf.write(_json_line(row.values, columns, extra) + "\n")
                    yield f"{path}/dt={day.isoformat()}/{name}", line, row
            _write_file(folder / name, buf.getvalue(), gz)


def _json_line(values: dict, columns: list[str], extra: bool) -> str:
    obj = {c: values[c] for c in columns if values.get(c) is not None}
    if extra:
        obj["_exported_by"] = "links-api"
    return json.dumps(obj, ensure_ascii=False)


def _csv_line(values: dict, columns: list[str], extra: bool) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(
        [values.get(c) or "" for c in columns] + [EXTRA_COLUMN[1]] * extra
    )
    return buf.getvalue()[:-1]


def _write_file(path: Path, text: str, gz: bool, level: int = 9) -> None:
    data = text.encode()
    path.write_bytes(gzip.compress(data, compresslevel=level, mtime=0) if gz else data)


# ---- volume mode ----------------------------------------------------------------------------------------------

CLICKS_PER_VISITOR = (1, 1, 2, 3, 4, 5, 6)  # a browsing visitor's clicks: one of these, at random
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _stamps(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Timestamps as exports write them (like `_Generator.ts`), column-wise: 80% with `Z`, 10% in another
    offset, 10% without one. `t`: epoch seconds."""
    n = len(t)
    r = rng.random(n)
    offset = np.array([int(o.utcoffset(None).total_seconds()) for o in OFFSETS])[
        rng.integers(0, len(OFFSETS), n)
    ]
    local = np.where((r >= 0.8) & (r < 0.9), t + offset, t)
    text = np.datetime_as_string(local.astype("datetime64[s]"), unit="s").tolist()
    suffix = {
        o: f"{'+' if o >= 0 else '-'}{abs(o) // 3600:02d}:{abs(o) % 3600 // 60:02d}"
        for o in set(offset.tolist())
    }
    return np.array(
        [
            s + "Z" if x < 0.8 else s + suffix[o] if x < 0.9 else s
            for s, x, o in zip(text, r.tolist(), offset.tolist(), strict=True)
        ],
        dtype=object,
    )


def _styled_emails(rng: np.random.Generator, emails: list[str]) -> np.ndarray:
    """Emails as exports write them (like `_Generator.email`): some in capitals, capitalised, or in spaces."""
    r = rng.random(len(emails)).tolist()
    return np.array(
        [
            e.upper() if x < 0.04 else e[0].upper() + e[1:] if x < 0.07 else f" {e} " if x < 0.09 else e
            for e, x in zip(emails, r, strict=True)
        ],
        dtype=object,
    )


def _pick(rng: np.random.Generator, options: tuple, n: int) -> np.ndarray:
    return np.array(options, dtype=object)[rng.integers(0, len(options), n)]


class _Traffic:
    """Volume mode: the browsing traffic on partner links (visitors, their clicks and conversions) and the
    marketing activities without a partner code, column-wise with numpy, day by day, merged into the
    partitions of the simulation's own rows of those entities (journeys, spam bursts, dirt).

    The mix is the per-row generator's (`_Generator.simulate`, browsing traffic): a visitor clicks 1, 1, 2, 3,
    4, 5 or 6 times on one link of a partner chosen by its archetype's weight, 0.05 to 30 hours apart, from one
    IP address (9 in 10) and country; one activity without a partner code for every four visitors, half of them
    by a journey's contact. What changes with the volume is who converts: the converting visitors stay those of
    the scale (0.7 x 8 per scale unit a day; their emails: 12 in 70 a journey's contact, 43 at a prospect's
    domain, 15 free mail, and 1 in 20 converts again later), the rest of the traffic is anonymous browsing.
    Event rows are re-delivered at the per-row generator's shares (clicks 0.6%, conversions and activities 1%),
    half in the same partition and half in the next day's."""

    PATHS = ("links/clicks", "links/conversions", "marketing/activities")
    DUPLICATES = {"links/clicks": 0.006, "links/conversions": 0.01, "marketing/activities": 0.01}

    def __init__(self, g: _Generator, clicks_per_day: int, log: Callable[[str], None]) -> None:
        self.g, self.log = g, log
        self.visitors = max(1, round(clicks_per_day * len(CLICKS_PER_VISITOR) / sum(CLICKS_PER_VISITOR)))
        self.converting = 0.7 * min(1.0, 8 * g.f / self.visitors)
        self.activities = round(self.visitors / 4)
        self.seed = [abs(g.seed), int(g.seed < 0)]
        self.t0 = int((g.t0 - _EPOCH).total_seconds())
        partners = g.partner_list
        self.cum_weights = np.cumsum([p.weight for p in partners])
        width = max(len(p.links) for p in partners)
        self.link_created = np.full((len(partners), width), np.iinfo(np.int64).max, dtype=np.int64)
        self.link_no = np.zeros((len(partners), width), dtype=np.int64)
        self.codes: list[str] = []
        for i, p in enumerate(partners):
            for j, link in enumerate(sorted(p.links, key=lambda k: k.created)):
                self.link_created[i, j] = int((link.created - _EPOCH).total_seconds())
                self.link_no[i, j] = len(self.codes)
                self.codes.append(link.code)
        self.codes_array = np.array(self.codes, dtype=object)
        self.prospects = np.array(g.prospects, dtype=object)
        self.contacts = np.array(g.contacts, dtype=object)
        # The next identifier of each kind, after the simulation's own.
        self.next = {prefix: next(g.ids[prefix]) for prefix in ("clk-", "v-", "cv-", "ACT-")}
        # Rows waiting for the partition of a later day: path -> day -> [(times, columns, order)].
        self.pending: dict[str, dict[int, list]] = {p: defaultdict(list) for p in self.PATHS}

    def rng(self, day: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([*self.seed, day, stream])

    def ids(self, prefix: str, width: int, n: int) -> np.ndarray:
        first = self.next[prefix]
        self.next[prefix] += n
        return np.array([f"{prefix}{i:0{width}d}" for i in range(first, first + n)], dtype=object)

    def hold(self, path: str, t: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        """Queue rows for the partitions of their UTC days; rows at or after the window's end are not written."""
        day = (t - self.t0) // 86400
        keep = day < self.g.days
        t, day = t[keep], day[keep]
        columns = {c: v[keep] for c, v in columns.items()}
        for d in np.unique(day).tolist():
            sel = day == d
            self.pending[path][d].append((t[sel], {c: v[sel] for c, v in columns.items()}))

    def simulate_day(self, day: int) -> None:
        rng = self.rng(day, 1)
        fmt = self.rng(day, 2)
        n = self.visitors
        start = self.t0 + 86400 * day
        first = start + rng.integers(0, 86400, n)
        partner = np.minimum(
            np.searchsorted(self.cum_weights, rng.random(n) * self.cum_weights[-1], side="right"),
            len(self.cum_weights) - 1,
        )
        usable = np.maximum((self.link_created[partner] <= first[:, None]).sum(axis=1), 1)
        link = self.link_no[partner, (rng.random(n) * usable).astype(np.int64)]
        clicks = np.array(CLICKS_PER_VISITOR)[rng.integers(0, len(CLICKS_PER_VISITOR), n)]
        has_ip = rng.random(n) < 0.9
        octets = rng.integers(1, 255, (n, 4)).tolist()
        ip = np.array(
            [
                f"{a}.{b}.{c}.{d}" if h else None
                for (a, b, c, d), h in zip(octets, has_ip.tolist(), strict=True)
            ],
            dtype=object,
        )
        country = _pick(rng, COUNTRIES, n)
        converts = rng.random(n)
        visitor = self.ids("v-", 7, n)

        # Clicks: the visitor's first click at `first`, each next one 0.05 to 30 hours after the previous.
        of = np.repeat(np.arange(n), clicks)
        total = len(of)
        starts = np.cumsum(clicks) - clicks
        gap = (3600 * rng.uniform(0.05, 30, total)).astype(np.int64)
        gap[starts] = 0
        run = np.cumsum(gap)
        t = first[of] + run - run[starts][of]
        self.hold(
            "links/clicks",
            t,
            {
                "click_id": self.ids("clk-", 8, total),
                "link_code": self.codes_array[link[of]],
                "clicked_at": _stamps(fmt, t),
                "visitor_id": visitor[of],
                "ip_address": ip[of],
                "user_agent": _pick(rng, AGENTS, total),
                "country": country[of],
                "referer_url": _pick(rng, REFERERS, total),
            },
        )

        # Conversions of the converting visitors, some hours after their last click.
        conv = np.flatnonzero(converts < self.converting)
        last = t[starts + clicks - 1][conv]
        kind = converts[conv] / self.converting * 0.7
        m = len(conv)
        first_names, last_names = _pick(rng, FIRST, m).tolist(), _pick(rng, LAST, m).tolist()
        prospect, free = _pick(rng, tuple(self.prospects), m).tolist(), _pick(rng, FREE_MAIL, m).tolist()
        contact = self.contacts[rng.integers(0, len(self.contacts), m)].tolist()
        number_prospect, number_free = rng.integers(0, 20, m).tolist(), rng.integers(0, 100, m).tolist()
        emails = [
            c if k < 0.12 else f"{a}.{b}{np_}@{d}" if k < 0.55 else f"{a}{b}{nf}@{fm}"
            for k, c, a, b, d, fm, np_, nf in zip(
                kind.tolist(),
                contact,
                first_names,
                last_names,
                prospect,
                free,
                number_prospect,
                number_free,
                strict=True,
            )
        ]
        cv = last + (3600 * rng.uniform(0.2, 48, m)).astype(np.int64)
        again = np.flatnonzero(
            rng.random(m) < 0.05
        )  # a second conversion later: the earliest names the visitor
        cv2 = cv[again] + (3600 * rng.uniform(24, 200, len(again))).astype(np.int64)
        emails += [
            f"{a}{b}9@{fm}"
            for a, b, fm in zip(
                _pick(rng, FIRST, len(again)).tolist(),
                _pick(rng, LAST, len(again)).tolist(),
                _pick(rng, FREE_MAIL, len(again)).tolist(),
                strict=True,
            )
        ]
        t_cv = np.concatenate([cv, cv2])
        self.hold(
            "links/conversions",
            t_cv,
            {
                "conversion_id": self.ids("cv-", 7, len(t_cv)),
                "visitor_id": np.concatenate([visitor[conv], visitor[conv][again]]),
                "email": _styled_emails(fmt, emails),
                "event": _pick(rng, ("signup", "lead", "lead"), len(t_cv)),
                "converted_at": _stamps(fmt, t_cv),
            },
        )

        # Marketing activities without a partner code (like `_Generator.activity` without a code).
        a = self.activities
        t_act = start + rng.integers(0, 86400, a)
        by_contact = rng.random(a) < 0.5
        person = [
            f"{x}.{y}1@{d}"
            for x, y, d in zip(
                _pick(rng, FIRST, a).tolist(),
                _pick(rng, LAST, a).tolist(),
                _pick(rng, tuple(self.prospects), a).tolist(),
                strict=True,
            )
        ]
        contact = self.contacts[rng.integers(0, len(self.contacts), a)].tolist()
        emails = [c if b else q for c, q, b in zip(contact, person, by_contact.tolist(), strict=True)]
        page = _pick(rng, ("pricing", "demo", "webinar", "blog/partners", ""), a)
        channel = rng.integers(0, 5, a)
        source = np.array(["google", "linkedin", "newsletter", None, "bing"], dtype=object)[channel]
        medium = np.array(["cpc", "social", "email", None, "cpc"], dtype=object)[channel]
        content = np.where((medium == "cpc") & (rng.random(a) < 0.1), "ad-variant-b", None).astype(object)
        url = np.array(
            [
                f"https://www.example.com/{p}" + (f"?utm_source={s}" if s else "")
                for p, s in zip(page.tolist(), source.tolist(), strict=True)
            ],
            dtype=object,
        )
        self.hold(
            "marketing/activities",
            t_act,
            {
                "activity_id": self.ids("ACT-", 7, a),
                "email": _styled_emails(fmt, emails),
                "activity_type": _pick(
                    rng, ("form_fill", "email_click", "webinar_attended", "content_download"), a
                ),
                "occurred_at": _stamps(fmt, t_act),
                "utm_source": source,
                "utm_medium": medium,
                "utm_campaign": _pick(rng, (None, "q1", "brand"), a),
                "utm_content": content,
                "landing_url": url,
            },
        )

    def write(self, out: Path):
        """Write every partition of the browsing entities; yields (path, rows, duplicate rows, rejects) for each
        partition written."""
        g = self.g
        redelivered: dict[str, dict[int, list]] = {p: defaultdict(list) for p in self.PATHS}
        written = 0
        for day in range(g.days):
            self.simulate_day(day)
            for path in self.PATHS:
                ent = ENTITIES_BY_PATH[path]
                chunks = self.pending[path].pop(day, [])
                t = np.concatenate([c[0] for c in chunks]) if chunks else np.zeros(0, dtype=np.int64)
                n = len(t)
                order = np.argsort(t, kind="stable")
                t = t[order]
                cols = (
                    {c: np.concatenate([ch[1][c] for ch in chunks])[order] for c in chunks[0][1]}
                    if chunks
                    else {}
                )
                when = g.start + timedelta(days=day)
                world = g.parts.get((path, when), [])
                late = redelivered[path].pop(day, [])  # re-delivered from the day before: (values, index)
                # Re-deliveries: half again in this partition, half in the next day's (at its first second).
                share = self.DUPLICATES[path]
                again = self.rng(day, 3 + self.PATHS.index(path)).choice(n, round(n * share), replace=False)
                again = again.tolist() if n else []
                moved = again[1::2] if day + 1 < g.days else []
                here = again[::2] if moved else again
                total = len(world) + n + len(here) + len(late)
                if total == 0:
                    continue
                gz, split, columns, extra = g.partition_style(path, when, total)
                line = _json_line if ent.format == "jsonl" else _csv_line
                lines = self.lines(ent, cols, columns, extra, n)
                entries = [
                    (x, 1, i, 0, s, None) for i, (x, s) in enumerate(zip(t.tolist(), lines, strict=True))
                ]
                entries += [(entries[i][0], 1, i, 1, lines[i], None) for i in here]
                midnight = self.t0 + 86400 * day
                entries += [(midnight, 2, i, 0, line(values, columns, extra), None) for values, i in late]
                for i in moved:
                    redelivered[path][day + 1].append(({c: v[i] for c, v in cols.items()}, i))
                for row in world:
                    text = row.raw if row.raw is not None else line(row.values, columns, extra)
                    entries.append(((row.when - _EPOCH).total_seconds(), 0, row.seq, 0, text, row))
                entries.sort(key=lambda e: e[:4])
                rejects = self.write_partition(out, ent, when, entries, gz, split, columns, extra)
                dups = len(here) + len(late) + sum(r.duplicate for r in world)
                written += n
                yield path, len(entries), dups, rejects
            if (day + 1) % 30 == 0 or day + 1 == g.days:
                self.log(f"  volume mode: day {day + 1}/{g.days}, {written} browsing rows written")

    @staticmethod
    def lines(ent, cols: dict[str, np.ndarray], columns: list[str], extra: bool, n: int) -> list[str]:
        """The rows' lines in the partition's column order, as `_json_line` and `_csv_line` write them (no value
        of this traffic needs quoting or escaping)."""
        if not n:
            return []
        if ent.format == "jsonl":  # the first column is required: every other member follows a ", "
            parts = [[f'{{"{columns[0]}": "{v}"' for v in cols[columns[0]].tolist()]]
            parts += [
                [f', "{c}": "{v}"' if v is not None else "" for v in cols[c].tolist()] for c in columns[1:]
            ]
            parts.append([', "_exported_by": "links-api"}' if extra else "}"] * n)
            return ["".join(row) for row in zip(*parts, strict=True)]
        parts = [[v or "" for v in cols[c].tolist()] for c in columns]
        if extra:
            parts.append([EXTRA_COLUMN[1]] * n)
        return [",".join(row) for row in zip(*parts, strict=True)]

    def write_partition(self, out, ent, day, entries, gz, split, columns, extra) -> list[dict]:
        folder = out / ent.path / f"dt={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        half = len(entries) // 2
        chunks = [entries[:half], entries[half:]] if split else [entries]
        rejects = []
        for n, chunk in enumerate(chunks):
            name = f"{ent.name}-part-{n:04d}.{ent.format}" + (".gz" if gz else "")
            head = [",".join(columns + [EXTRA_COLUMN[0]] * extra)] if ent.format == "csv" else []
            first = 1 + len(head)
            for i, e in enumerate(chunk):
                if e[5] is not None and e[5].reject:
                    rejects.append(
                        {
                            "file": f"{ent.path}/dt={day.isoformat()}/{name}",
                            "line": first + i,
                            "reason": e[5].reject,
                        }
                    )
            _write_file(folder / name, "\n".join(head + [e[4] for e in chunk]) + "\n", gz, level=1)
        return rejects


def generate(
    out_dir: Path | str,
    start: date,
    days: int,
    *,
    scale: str = "small",
    seed: int = 7,
    log: Callable[[str], None] = print,
    clicks_per_day: int | None = None,
) -> dict:
    """Write `days` days of sample exports from `start` into `out_dir`, in the landing layout.

    The layout is described in docs/rules.md, Inputs.

    `clicks_per_day` selects the volume mode: the browsing traffic on partner links (and the marketing
    activities without a partner code, one for every four visitors) is written column-wise at about that many
    clicks a day instead of the scale's own (about 25 a day per scale unit), everything else follows `scale`;
    see `_Traffic`. Without it the output is the per-row generator's, unchanged.

    Returns a summary: files written, rows per entity, duplicate event rows, and the rows the loader must
    reject (`rejects`: file relative to `out_dir`, line number, reason). Refuses to write into a landing
    folder that already holds exports, so that no stale file mixes with the new ones."""
    out = Path(out_dir)
    for ent in ENTITIES:
        folder = out / ent.path
        if folder.is_dir() and any(folder.iterdir()):
            raise FileExistsError(f"{folder} already holds exports; generate into an empty folder")
    g = _Generator(start, days, scale, seed, clicks_per_day)
    volume = "" if clicks_per_day is None else f", volume mode: {clicks_per_day} clicks a day"
    log(
        f"generating {days} days of sample exports from {start} (scale {scale}, seed {seed}{volume}) into {out}"
    )
    g.simulate()
    g.dirt()
    summary = g.write(out, log)
    log(
        f"wrote {summary['files']} files, {sum(summary['rows'].values())} rows, {summary['dirty_rows']} to be rejected"
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    """`python -m referral_pipeline.generate`: the generator with its volume mode (see `generate`)."""
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m referral_pipeline.generate",
        description="Write realistic, seeded sample exports in the landing layout (the generator of "
        "`referral-pipeline generate`, with its volume mode).",
        epilog="Volume mode: --clicks-per-day N writes the browsing traffic on partner links (visitors, their "
        "clicks and conversions) and the marketing activities without a partner code column-wise at about N "
        "clicks a day; partners, accounts, journeys, referrals, deals and the dirt follow --scale. One year at "
        "about 30,000 touchpoints a day: --scale large --days 365 --clicks-per-day 30000. Ten times the large "
        "volume: --scale xlarge --clicks-per-day 25000.",
    )
    ap.add_argument("--out", required=True, metavar="DIR", help="landing root to write into (empty)")
    ap.add_argument("--start", type=date.fromisoformat, required=True, metavar="YYYY-MM-DD", help="first day")
    ap.add_argument("--days", type=int, required=True, metavar="N", help="number of days (at least 1)")
    ap.add_argument(
        "--scale",
        default="small",
        choices=list(SCALES),
        help="size of the simulated program: partners, accounts, journeys, deals (xlarge: 10 x large but its 800 partners)",
    )
    ap.add_argument("--seed", type=int, default=7, help="random seed: the same seed writes the same files")
    ap.add_argument(
        "--clicks-per-day",
        type=int,
        default=None,
        metavar="N",
        help="volume mode: about N link clicks a day of browsing traffic, written column-wise (fast)",
    )
    args = ap.parse_args(argv)
    try:
        generate(
            args.out,
            args.start,
            args.days,
            scale=args.scale,
            seed=args.seed,
            clicks_per_day=args.clicks_per_day,
        )
    except (ValueError, FileExistsError) as e:
        print(f"error: {e}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
