"""The landing-zone input contract (see docs/rules.md, Inputs): every source entity, its columns and their
types.

This module is the single description of the inputs. The loader validates against it, the raw-table DDL is
generated from it, and the sample-data generator writes files that follow it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

# Column value types of the landing contract (see docs/rules.md, Values).
TEXT, TIMESTAMP, DATE, BOOL, DECIMAL, INTEGER, ENUM, CURRENCY, EMAIL, DOMAIN = (
    "text",
    "timestamp",
    "date",
    "bool",
    "decimal",
    "integer",
    "enum",
    "currency",
    "email",
    "domain",
)

SQL_TYPES = {
    TEXT: "text",
    TIMESTAMP: "timestamptz",
    DATE: "date",
    BOOL: "boolean",
    DECIMAL: "numeric",
    INTEGER: "bigint",
    ENUM: "text",
    CURRENCY: "text",
    EMAIL: "text",
    DOMAIN: "text",
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str = TEXT
    required: bool = False
    choices: tuple[str, ...] = ()
    # Lower bound for decimals: value must be > min_value (exclusive) or >= min_value (inclusive).
    min_value: Decimal | None = None
    min_exclusive: bool = False
    default: object = None  # used when the value is NULL (e.g. is_deleted -> False)
    # Stored under another name after a transformation (ip_address -> ip_hash, HMAC-SHA256).
    stored_as: str | None = None

    @property
    def column_name(self) -> str:
        return self.stored_as or self.name

    @property
    def sql_type(self) -> str:
        return "text" if self.stored_as else SQL_TYPES[self.type]


@dataclass(frozen=True)
class Entity:
    source: str
    name: str
    kind: str  # "record" (latest version wins) or "event" (first occurrence wins)
    format: str  # "csv" or "jsonl"
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # identity columns
    version_column: str | None = None  # records: the column whose greatest value wins
    extra: dict = field(default_factory=dict)

    @property
    def path(self) -> str:
        """Relative folder of the entity in the landing zone: `{source}/{entity}`."""
        return f"{self.source}/{self.name}"

    @property
    def table(self) -> str:
        """Raw table name (schema `raw`): `{source}__{entity}`."""
        return f"{self.source}__{self.name}"

    @property
    def asset_name(self) -> str:
        return f"raw_{self.source}__{self.name}"

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def _c(name: str, type_: str = TEXT, req: bool = False, **kw) -> Column:
    return Column(name=name, type=type_, required=req, **kw)


ZERO = Decimal(0)

ENTITIES: tuple[Entity, ...] = (
    Entity(
        "crm",
        "partners",
        "record",
        "csv",
        (
            _c("partner_id", req=True),
            _c("name", req=True),
            _c("email", EMAIL, req=True),
            _c("company_domain", DOMAIN),
            _c(
                "partner_type",
                ENUM,
                choices=("customer", "consultant", "integrator", "affiliate", "reseller"),
            ),
            _c("status", ENUM, req=True, choices=("active", "suspended", "terminated")),
            _c("joined_at", TIMESTAMP, req=True),
            _c("terminated_at", TIMESTAMP),
            _c("payout_currency", CURRENCY, req=True),
            _c("tax_form_on_file", BOOL, req=True),
            _c("country"),
            _c("updated_at", TIMESTAMP, req=True),
        ),
        key=("partner_id",),
        version_column="updated_at",
    ),
    Entity(
        "crm",
        "companies",
        "record",
        "csv",
        (
            _c("company_domain", DOMAIN, req=True),
            _c("name"),
            _c("employee_count", INTEGER),
            _c("country"),
            _c("industry"),
            _c("updated_at", TIMESTAMP, req=True),
        ),
        key=("company_domain",),
        version_column="updated_at",
    ),
    Entity(
        "crm",
        "contacts",
        "record",
        "csv",
        (
            _c("contact_id", req=True),
            _c("email", EMAIL, req=True),
            _c("first_name"),
            _c("last_name"),
            _c("company_domain", DOMAIN),
            _c("created_at", TIMESTAMP, req=True),
            _c("updated_at", TIMESTAMP, req=True),
            _c("is_deleted", BOOL, default=False),
        ),
        key=("contact_id",),
        version_column="updated_at",
    ),
    Entity(
        "crm",
        "deals",
        "record",
        "csv",
        (
            _c("deal_id", req=True),
            _c("primary_contact_id"),
            _c("company_domain", DOMAIN),
            _c("deal_name"),
            _c("deal_type", ENUM, req=True, choices=("new_business", "expansion", "renewal")),
            _c("stage", req=True),
            _c("amount", DECIMAL, req=True, min_value=ZERO),
            _c("currency", CURRENCY, req=True),
            _c("created_at", TIMESTAMP, req=True),
            _c("closed_at", TIMESTAMP),
            _c("is_won", BOOL, req=True),
            _c("updated_at", TIMESTAMP, req=True),
            _c("is_deleted", BOOL, default=False),
        ),
        key=("deal_id",),
        version_column="updated_at",
    ),
    Entity(
        "crm",
        "deal_stage_history",
        "event",
        "csv",
        (
            _c("deal_id", req=True),
            _c("stage", req=True),
            _c("entered_at", TIMESTAMP, req=True),
        ),
        key=("deal_id", "stage", "entered_at"),
    ),
    Entity(
        "crm",
        "referrals",
        "record",
        "csv",
        (
            _c("referral_id", req=True),
            _c("partner_id", req=True),
            _c("contact_email", EMAIL, req=True),
            _c("company_domain", DOMAIN),
            _c("submitted_at", TIMESTAMP, req=True),
            _c("status", ENUM, req=True, choices=("submitted", "accepted", "rejected")),
            _c("accepted_at", TIMESTAMP),
            _c("updated_at", TIMESTAMP, req=True),
        ),
        key=("referral_id",),
        version_column="updated_at",
    ),
    Entity(
        "crm",
        "deal_reversals",
        "event",
        "csv",
        (
            _c("reversal_id", req=True),
            _c("deal_id", req=True),
            _c("reversal_type", ENUM, req=True, choices=("refund", "cancellation", "chargeback")),
            _c("amount", DECIMAL, req=True, min_value=ZERO, min_exclusive=True),
            _c("occurred_at", TIMESTAMP, req=True),
        ),
        key=("reversal_id",),
    ),
    Entity(
        "marketing",
        "activities",
        "event",
        "csv",
        (
            _c("activity_id", req=True),
            _c("email", EMAIL, req=True),
            _c(
                "activity_type",
                ENUM,
                req=True,
                choices=("form_fill", "email_click", "webinar_attended", "content_download"),
            ),
            _c("occurred_at", TIMESTAMP, req=True),
            _c("utm_source"),
            _c("utm_medium"),
            _c("utm_campaign"),
            _c("utm_content"),
            _c("landing_url"),
        ),
        key=("activity_id",),
    ),
    Entity(
        "links",
        "links",
        "record",
        "jsonl",
        (
            _c("link_code", req=True),
            _c("partner_id", req=True),
            _c("destination_url"),
            _c("created_at", TIMESTAMP, req=True),
        ),
        key=("link_code",),
        # Links have no updated_at: the later partition, file and line win (like fx_rates).
        version_column=None,
    ),
    Entity(
        "links",
        "clicks",
        "event",
        "jsonl",
        (
            _c("click_id", req=True),
            _c("link_code", req=True),
            _c("clicked_at", TIMESTAMP, req=True),
            _c("visitor_id", req=True),
            _c("ip_address", stored_as="ip_hash"),
            _c("user_agent"),
            _c("country"),
            _c("referer_url"),
        ),
        key=("click_id",),
    ),
    Entity(
        "links",
        "conversions",
        "event",
        "jsonl",
        (
            _c("conversion_id", req=True),
            _c("visitor_id", req=True),
            _c("email", EMAIL, req=True),
            _c("event", ENUM, req=True, choices=("signup", "lead")),
            _c("converted_at", TIMESTAMP, req=True),
        ),
        key=("conversion_id",),
    ),
    Entity(
        "finance",
        "fx_rates",
        "record",
        "csv",
        (
            _c("rate_date", DATE, req=True),
            _c("currency", CURRENCY, req=True),
            _c("rate", DECIMAL, req=True, min_value=ZERO, min_exclusive=True),
        ),
        key=("rate_date", "currency"),
        version_column=None,
    ),
)

ENTITIES_BY_PATH = {e.path: e for e in ENTITIES}
SOURCES = tuple(dict.fromkeys(e.source for e in ENTITIES))

# Lineage columns carried by every raw row (see docs/rules.md, What gets rejected, and where it goes).
LINEAGE_COLUMNS = (
    ("_partition_date", "date not null"),
    ("_source_file", "text not null"),
    ("_line_number", "integer not null"),
    ("_load_batch_id", "text not null"),
    ("_loaded_at", "timestamptz not null"),
)


def entity(path: str) -> Entity:
    """Look an entity up by its landing path, e.g. `crm/deals`."""
    try:
        return ENTITIES_BY_PATH[path]
    except KeyError:
        raise KeyError(f"unknown entity {path!r}; known: {', '.join(ENTITIES_BY_PATH)}") from None
