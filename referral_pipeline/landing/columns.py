"""Column-wise conversion of a batch of landing rows into PostgreSQL `COPY ... (FORMAT binary)` rows.

The loader's hot path. A batch of rows arrives as one list of raw texts per column; every column becomes one
list of encoded COPY fields without a Python loop per value: a column's distinct raw values are converted once,
by the value rules of `values.parse_value` themselves, and looked up per row (`Codec`); a high-cardinality text
column is trimmed and encoded with C-level `map`s instead. Rows are assembled with one `bytes.join`
(`RowFormat`). A value that breaks a rule only marks its row: the reader sends that row through the row-at-a-time
path, which words the rejection.

Values are encoded as PostgreSQL receives them in binary: text as UTF-8, timestamptz as microseconds since
2000-01-01 UTC, date as days since 2000-01-01, boolean as one byte, bigint as 8 bytes, numeric with psycopg's
binary dumper.
"""

from __future__ import annotations

import operator
import re
import struct
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import compress, count, repeat

from psycopg import errors, sql
from psycopg.types.numeric import DecimalBinaryDumper

from ..entities import DOMAIN, EMAIL, ENUM, TEXT, TIMESTAMP, Column, Entity
from .values import hash_ips, parse_value

NULL = b"\xff\xff\xff\xff"  # a NULL field: length -1
SIGNATURE = (
    b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
)  # header: no flags, no extension
TRAILER = b"\xff\xff"

# The lineage columns as the loader copies them: the constant ones first, the line number last.
LINEAGE_ORDER = ("_partition_date", "_source_file", "_load_batch_id", "_loaded_at", "_line_number")

# Distinct values a column keeps converted (per file) before it starts over.
CACHE_LIMIT = 100_000

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_LINE = struct.Struct(">ii")  # an integer field: length 4, value
_I64 = struct.Struct(">iq")  # a bigint or timestamptz field: length 8, value
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_PG_EPOCH_DAY = date(2000, 1, 1)
_MICROSECOND = timedelta(microseconds=1)
_TRUE, _FALSE = b"\x00\x00\x00\x01\x01", b"\x00\x00\x00\x01\x00"
_numeric = DecimalBinaryDumper(Decimal).dump


def _text(value: str) -> bytes:
    data = value.encode()
    return _I32.pack(len(data)) + data


def _timestamptz(value: datetime) -> bytes:
    if value.tzinfo is None:
        raise ValueError(f"naive timestamp {value!r}")
    return _I64.pack(8, (value - _PG_EPOCH) // _MICROSECOND)


def _date(value: date) -> bytes:
    return _LINE.pack(4, (value - _PG_EPOCH_DAY).days)


def _boolean(value: bool) -> bytes:
    return _TRUE if value else _FALSE


def _bigint(value: int) -> bytes:
    if not -(2**63) <= value < 2**63:
        raise errors.NumericValueOutOfRange(f'value "{value}" is out of range for type bigint')
    return _I64.pack(8, value)


def _numeric_field(value: Decimal) -> bytes:
    data = bytes(_numeric(value))
    return _I32.pack(len(data)) + data


ENCODERS: dict[str, Callable] = {
    "text": _text,
    "timestamptz": _timestamptz,
    "date": _date,
    "boolean": _boolean,
    "bigint": _bigint,
    "numeric": _numeric_field,
    "integer": lambda value: _LINE.pack(4, value),
}


def field(sql_type: str, value: object) -> bytes:
    """One COPY BINARY field (length and data) of a typed value; None is NULL."""
    return NULL if value is None else ENCODERS[sql_type](value)


def positions(flags: Iterable) -> list[int]:
    """Indexes of the true flags."""
    return list(compress(count(), flags))


class _Bad:
    """Marks a value that breaks a rule (its row goes through the row-at-a-time path)."""

    __slots__ = ()


BAD = _Bad()

# A converted column is a list of "pieces": one list of whole fields, or two lists (the fields' lengths and
# their data), which the row assembly joins in turn without concatenating them first.
Pieces = list[list[bytes]]


def _texts(values: Iterable[str]) -> Pieces:
    data = list(map(str.encode, values))
    return [list(map(_I32.pack, map(len, data))), data]


# Column-wise forms of the value rules of `values.parse_value`, for trimmed, non-empty values without NUL:
# each returns the encoded column and the positions of the values that break the rule (whose fields are
# left as they come: their rows go through the row-at-a-time path).


def _text_rule(col: Column, key: str) -> Callable:
    return lambda values: (_texts(values), [])


def _ip_rule(col: Column, key: str) -> Callable:
    return lambda values: (_texts(hash_ips(values, key)), [])


def _enum_rule(col: Column, key: str) -> Callable:
    choices = frozenset(col.choices)

    def rule(values: list[str]) -> tuple[Pieces, list[int]]:
        lower = list(map(str.lower, values))
        return _texts(lower), positions(map(operator.not_, map(choices.__contains__, lower)))

    return rule


_EMAIL = re.compile(r"[^@]*@[^@]*\.[^@]*")  # exactly one "@" and a dot after it, as values.parse_email


def _email_rule(col: Column, key: str) -> Callable:
    def rule(values: list[str]) -> tuple[Pieces, list[int]]:
        lower = list(map(str.lower, values))
        return _texts(lower), positions(map(operator.not_, map(_EMAIL.fullmatch, lower)))

    return rule


def _domain_rule(col: Column, key: str) -> Callable:
    return lambda values: (_texts(map(str.removeprefix, map(str.lower, values), repeat("www."))), [])


_DATE_PREFIX = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # as values.parse_timestamp
_TZINFO = operator.attrgetter("tzinfo")


def _timestamp_rule(col: Column, key: str) -> Callable:
    one = _one_by_one(col, key)

    def rule(values: list[str]) -> tuple[Pieces, list[int]]:
        bad = positions(map(operator.not_, map(_DATE_PREFIX.match, values)))
        stamps: list[datetime] = []
        rest = iter(values)
        while len(stamps) < len(values):
            try:
                stamps.extend(map(datetime.fromisoformat, rest))
            except ValueError:
                bad.append(len(stamps))
                stamps.append(_PG_EPOCH)
        for i in positions(map(operator.is_, map(_TZINFO, stamps), repeat(None))):
            stamps[i] = stamps[i].replace(tzinfo=UTC)  # no offset: UTC
        micros = map(operator.floordiv, map(operator.sub, stamps, repeat(_PG_EPOCH)), repeat(_MICROSECOND))
        out = list(map(_I64.pack, repeat(8), micros))
        # near the ends of the calendar, the conversion to UTC may overflow: leave it to parse_value
        edges = positions(map(str.startswith, values, repeat(("0001", "9999"))))
        if edges:
            [edge_out], edge_bad = one([values[i] for i in edges])
            for i, value in zip(edges, edge_out, strict=True):
                out[i] = value
            bad = sorted(set(bad).difference(edges).union(edges[i] for i in edge_bad))
        return [out], bad

    return rule


def _one_by_one(col: Column, key: str) -> Callable:
    """Any rule, value by value with `parse_value` (for columns whose values repeat: see Codec)."""
    encode = ENCODERS[col.sql_type]

    def convert(raw: str) -> bytes | _Bad:
        try:
            value = parse_value(col, raw, ip_hash_key=key)
        except ValueError:
            return BAD
        return NULL if value is None else encode(value)

    def rule(values: list[str]) -> tuple[Pieces, list[int]]:
        out = list(map(convert, values))
        return [out], positions(map(operator.is_, out, repeat(BAD)))

    return rule


_RULES = {
    TEXT: _text_rule,
    ENUM: _enum_rule,
    EMAIL: _email_rule,
    DOMAIN: _domain_rule,
    TIMESTAMP: _timestamp_rule,
}


_CHEAP_RULES = (_text_rule, _enum_rule, _email_rule, _domain_rule)


class Codec:
    """Raw values of one column -> the column encoded for COPY, with the rules of `values.parse_value`.

    Values are trimmed by `str.strip` as `parse_value` trims them; an empty value is NULL (or the column's
    default, or a missing required value). A value that is neither a string nor None (a JSON number, boolean,
    object or array) is left to the row-at-a-time path. The caller guarantees that no value holds a NUL
    character (the readers send such lines through the row-at-a-time path). A column whose values mostly
    repeat converts each distinct value once and keeps the result (per file); any other column is converted
    in full."""

    def __init__(self, col: Column, ip_hash_key: str):
        self.col = col
        rule = _ip_rule if col.stored_as else _RULES.get(col.type, _one_by_one)
        self.rule = rule(col, ip_hash_key)
        # a rule that costs much more than a look-up (a hash, a timestamp, parse_value) always remembers
        self.may_go_direct = rule in _CHEAP_RULES
        self.default = field(col.sql_type, col.default)
        self.cache: dict[object, bytes] = {}
        self.bad_raws: set[object] = set()
        self.direct = False

    def fields(self, raws: list) -> tuple[Pieces, list[int]]:
        """The encoded column of `raws` and the positions of values that break a rule."""
        if self.direct:
            return self._convert(raws)
        try:
            distinct = set(raws)
        except TypeError:  # a JSON object or array
            return self._convert(raws)
        if self.may_go_direct and len(distinct) * 2 > len(raws) >= 64:  # mostly distinct: convert in full
            self.direct = True
            self.cache.clear()
            self.bad_raws.clear()
            return self._convert(raws)
        cache = self.cache
        missing = list(distinct.difference(cache))
        if missing:
            if len(cache) + len(missing) > CACHE_LIMIT:
                cache.clear()
                self.bad_raws.clear()
                missing = list(distinct)
            pieces, bad = self._convert(missing)
            cache.update(
                zip(missing, pieces[0] if len(pieces) == 1 else map(bytes.__add__, *pieces), strict=True)
            )
            self.bad_raws.update(missing[i] for i in bad)
        out = list(map(cache.__getitem__, raws))
        if self.bad_raws.isdisjoint(distinct):
            return [out], []
        return [out], positions(map(self.bad_raws.__contains__, raws))

    def _convert(self, raws: list) -> tuple[Pieces, list[int]]:
        values: list[str] = []
        others: list[int] = []  # positions of values that are not strings
        rest = iter(raws)
        while len(values) < len(raws):
            try:
                values.extend(map(str.strip, rest))
            except TypeError:
                if raws[len(values)] is not None:  # None is an empty value
                    others.append(len(values))
                values.append("")
        pieces, bad = self.rule(values)
        if "" in values:
            empty = positions(map(operator.not_, values))
            if self.col.required:
                bad = [*bad, *empty]
            else:
                for i in empty:
                    pieces[0][i] = self.default
                    if len(pieces) > 1:
                        pieces[1][i] = b""
                bad = list(set(bad).difference(empty))
        if others:
            bad = [*bad, *others]
        return pieces, sorted(set(bad))


class Columns:
    """The columns of one file: raw values per column -> the encoded columns, each by its Codec."""

    def __init__(self, entity: Entity, ip_hash_key: str):
        self.codecs = [Codec(c, ip_hash_key) for c in entity.columns]

    def convert(self, raws: Sequence[list]) -> tuple[Pieces, list[int]]:
        """`raws`: one list per entity column, in order. The encoded columns (their pieces, in order) and the
        positions of the rows with a value that breaks a rule."""
        pieces: Pieces = []
        bad: list[int] = []
        for codec, column in zip(self.codecs, raws, strict=True):
            p, wrong = codec.fields(column)
            pieces += p
            bad += wrong
        return pieces, sorted(set(bad)) if bad else bad


class RowFormat:
    """COPY BINARY rows of one file: the entity's columns, then the lineage (the line number last)."""

    def __init__(
        self, entity: Entity, partition_date: date, source_file: str, batch_id: str, loaded_at: datetime
    ):
        self.entity = entity
        self.types = [c.sql_type for c in entity.columns]
        self.head = _I16.pack(len(entity.columns) + len(LINEAGE_ORDER))
        self.tail = b"".join(
            (_date(partition_date), _text(source_file), _text(batch_id), _timestamptz(loaded_at))
        )

    @staticmethod
    def copy_sql(entity: Entity) -> sql.Composed:
        columns = [c.column_name for c in entity.columns] + list(LINEAGE_ORDER)
        return sql.SQL("copy {} ({}) from stdin (format binary)").format(
            sql.Identifier("raw", entity.table), sql.SQL(", ").join(map(sql.Identifier, columns))
        )

    def row(self, values: Sequence, line: int) -> bytes:
        """One row from typed values (in the entity's column order)."""
        fields = b"".join(map(field, self.types, values))
        return b"".join((self.head, fields, self.tail, _LINE.pack(4, line)))

    def rows(self, pieces: Pieces, lines: Sequence[int], keep: Iterable[bool] | None = None) -> bytes:
        """Rows from encoded columns (`Columns.convert`) and their line numbers; with `keep`, only the rows
        whose flag is true."""
        rows = zip(repeat(self.head), *pieces, repeat(self.tail), map(_LINE.pack, repeat(4), lines))
        return b"".join(map(b"".join, rows if keep is None else compress(rows, keep)))
