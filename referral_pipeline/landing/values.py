"""Value rules of the landing contract (see docs/rules.md, Values): one parser per column type.

Every parser takes the raw text of one field and returns the typed value, or raises ValueError with a short
reason (the caller prefixes the field name). The rules, in one place:

- every value is trimmed; an empty value is NULL; a required NULL rejects the row; a NULL with a column default
  takes the default (``is_deleted`` -> false);
- ``timestamp``: what ``datetime.fromisoformat`` accepts (a trailing ``Z`` included), starting ``YYYY-MM-DD``;
  an offset is converted to UTC, no offset means UTC;
- ``date``: ``YYYY-MM-DD``; ``bool``: true/false/1/0, case-insensitive; ``decimal``: ``[+-]digits[.digits]``;
  ``integer``: ``[+-]digits``; lower bounds from the entity contract (``>= 0`` or ``> 0``);
- enumerations match case-insensitively and are stored lower-case; ``currency`` is three ASCII letters, stored
  upper-case; emails are lower-cased and valid with exactly one ``@`` and a dot in the domain; domain fields are
  lower-cased and lose one leading ``www.``;
- ``ip_address`` is never stored: it becomes an HMAC-SHA256 hex digest (column ``ip_hash``);
- a value holding a NUL character is rejected (PostgreSQL text cannot store it).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import deque
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import repeat

from ..entities import (
    BOOL,
    CURRENCY,
    DATE,
    DECIMAL,
    DOMAIN,
    EMAIL,
    ENUM,
    INTEGER,
    TEXT,
    TIMESTAMP,
    Column,
    Entity,
)

_DATE_PREFIX = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DECIMAL = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_CURRENCY = re.compile(r"[A-Za-z]{3}")
_BOOLS = {"true": True, "1": True, "false": False, "0": False}


def parse_timestamp(s: str) -> datetime:
    if not _DATE_PREFIX.match(s):
        raise ValueError(f"cannot parse {s!r} as timestamp (must start with YYYY-MM-DD)")
    try:
        ts = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"cannot parse {s!r} as timestamp") from None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def parse_date(s: str) -> date:
    try:
        if not _DATE.fullmatch(s):
            raise ValueError
        return date.fromisoformat(s)
    except ValueError:
        raise ValueError(f"cannot parse {s!r} as date (YYYY-MM-DD)") from None


def parse_bool(s: str) -> bool:
    try:
        return _BOOLS[s.lower()]
    except KeyError:
        raise ValueError(f"cannot parse {s!r} as bool (true, false, 1 or 0)") from None


def parse_decimal(s: str) -> Decimal:
    if not _DECIMAL.fullmatch(s):
        raise ValueError(f"cannot parse {s!r} as decimal")
    return Decimal(s)


def parse_integer(s: str) -> int:
    if not _INTEGER.fullmatch(s):
        raise ValueError(f"cannot parse {s!r} as int")
    return int(s)


def parse_currency(s: str) -> str:
    if not _CURRENCY.fullmatch(s):
        raise ValueError(f"invalid currency {s!r} (three letters)")
    return s.upper()


def parse_email(s: str) -> str:
    s = s.lower()
    if s.count("@") != 1 or "." not in s.split("@", 1)[1]:
        raise ValueError(f"invalid email {s!r}")
    return s


def parse_domain(s: str) -> str:
    s = s.lower()
    return s[4:] if s.startswith("www.") else s


def hash_ip(ip: str, key: str) -> str:
    """The stored form of an IP address: HMAC-SHA256(key, ip) as hex."""
    return hmac.new(key.encode(), ip.encode(), hashlib.sha256).hexdigest()


def hash_ips(ips: list[str], key: str) -> list[str]:
    """`hash_ip` of many addresses at once: HMAC-SHA256 (RFC 2104) from the key's inner and outer SHA-256
    states, computed once, with C-level calls per address."""
    k = key.encode()
    if len(k) > 64:  # the SHA-256 block size
        k = hashlib.sha256(k).digest()
    k = k.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in k))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in k))
    sha = type(inner)
    inners = list(map(sha.copy, repeat(inner, len(ips))))
    deque(map(sha.update, inners, map(str.encode, ips)), maxlen=0)
    outers = list(map(sha.copy, repeat(outer, len(ips))))
    deque(map(sha.update, outers, map(sha.digest, inners)), maxlen=0)
    return list(map(sha.hexdigest, outers))


_PARSERS = {
    TEXT: str,
    TIMESTAMP: parse_timestamp,
    DATE: parse_date,
    BOOL: parse_bool,
    DECIMAL: parse_decimal,
    INTEGER: parse_integer,
    CURRENCY: parse_currency,
    EMAIL: parse_email,
    DOMAIN: parse_domain,
}


def parse_value(col: Column, raw: str | None, *, ip_hash_key: str) -> object:
    """Typed, normalised value of one field (None for NULL). Raises ValueError('<field>: <reason>')."""
    s = raw.strip() if raw is not None else ""
    if not s:
        if col.required:
            raise ValueError(f"{col.name}: required field is missing")
        return col.default
    try:
        if "\x00" in s:
            raise ValueError("contains a NUL character")
        if col.type == ENUM:
            value: object = s.lower()
            if value not in col.choices:
                raise ValueError(f"{s!r} is not one of {', '.join(col.choices)}")
        else:
            value = _PARSERS[col.type](s)
        if col.min_value is not None and value is not None:
            if value < col.min_value or (col.min_exclusive and value == col.min_value):
                raise ValueError(f"must be {'>' if col.min_exclusive else '>='} {col.min_value}, got {s}")
    except ValueError as e:
        raise ValueError(f"{col.name}: {e}") from None
    if col.stored_as:  # ip_address -> ip_hash: the raw value is never stored
        return hash_ip(str(value), ip_hash_key)
    return value


def parse_row(
    entity: Entity, fields: Mapping[str, str | None], *, ip_hash_key: str
) -> tuple[tuple, list[str]]:
    """Typed values of one row in the entity's column order, and the reasons it is rejected (empty if valid).

    A column absent from `fields` is NULL."""
    values, errors = [], []
    for col in entity.columns:
        try:
            values.append(parse_value(col, fields.get(col.name), ip_hash_key=ip_hash_key))
        except ValueError as e:
            values.append(None)
            errors.append(str(e))
    return tuple(values), errors
