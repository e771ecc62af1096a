"""Column-wise conversion of a batch of landing rows into PostgreSQL `COPY ... (FORMAT binary)` rows.

The loader's hot path. A batch of rows arrives as one list of raw texts per column; every column becomes one
list of encoded COPY fields without a Python loop per value: a column's distinct raw values are converted once,
by the value rules of `values.parse_value` themselves, and looked up per row (`Codec`); a high-cardinality text
column is trimmed and encoded with C-level `map`s instead. Rows are assembled with one `bytes.join`
(`RowFormat`). A value that breaks a rule only marks its row: the reader sends that row through the row-at-a-time
path, which words the rejection.

The readers hand the rows of a chunk over as Arrow string arrays, one per column (`Columns.convert_arrow`):
a column whose rule is a cheap text rule (text, email, domain) is converted by Arrow's kernels, exactly as
`parse_value` converts ASCII text (the same trim, lower-case and pattern); its non-ASCII values, and every value
of the other columns, go through the Codec above, each distinct value once (Arrow finds the distinct values and
spreads the converted fields back). Rows are then assembled by Arrow too (`RowFormat.rows_arrow`).

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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
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

# What str.strip() removes from ASCII text (parse_value trims with it): Arrow's own whitespace differs.
_PY_ASCII_SPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"
_NATIVE = {
    TEXT: (False, False, None),
    EMAIL: (True, False, "^" + _EMAIL.pattern + "$"),
    DOMAIN: (True, True, None),
}


def _whole(pieces: Pieces) -> Iterable[bytes]:
    """Whole fields from a converted column's pieces."""
    return pieces[0] if len(pieces) == 1 else map(bytes.__add__, *pieces)


def _fixed(values: np.ndarray, width: int) -> pa.Array:
    """A binary Arrow array of the raw bytes of a numpy array, `width` bytes per item."""
    data = pa.py_buffer(np.ascontiguousarray(values))
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(values), [None, data]).cast(pa.binary())


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
        # (lower-case, drop one leading "www.", pattern a valid value matches) for the rules Arrow applies
        self.native = None if col.stored_as else _NATIVE.get(col.type)

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

    def encode_distinct(self, raws: list) -> tuple[list[bytes], list[int]]:
        """Whole fields (length and data) of distinct raw values, and the positions of those that break a rule
        (their fields are NULL: their rows go through the row-at-a-time path)."""
        pieces, bad = self._convert(raws)
        fields = list(_whole(pieces))
        for i in bad:
            fields[i] = NULL
        return fields, bad

    def arrow_fields(
        self, raw: pa.Array, ascii_only: bool = False
    ) -> tuple[list[pa.Array], np.ndarray | None]:
        """The encoded column of an Arrow string array (nulls are empty values): one binary array of whole
        fields, or two (lengths and data); and the flags of the values that break a rule (None: none does).
        `ascii_only`: the caller knows that every value is ASCII."""
        if self.native is not None:
            return self._native_fields(raw, ascii_only)
        return self._distinct_fields(raw)

    def _distinct_fields(self, raw: pa.Array) -> tuple[list[pa.Array], np.ndarray | None]:
        """Each distinct value through the Python rule once, spread back by Arrow."""
        if raw.null_count:
            raw = raw.fill_null("")
        encoded = pc.dictionary_encode(raw)
        fields, bad = self.encode_distinct(encoded.dictionary.to_pylist())
        out = pa.array(fields, pa.binary()).take(encoded.indices)
        if not bad:
            return [out], None
        return [out], np.isin(encoded.indices.to_numpy(), bad)

    def _native_fields(self, raw: pa.Array, ascii_only: bool) -> tuple[list[pa.Array], np.ndarray | None]:
        """The rule by Arrow's kernels for ASCII values (the same trim, lower-case and pattern as `parse_value`
        applies to them); non-ASCII values through the Python rule."""
        n = len(raw)
        lower, www, pattern = self.native
        values = pc.utf8_trim(raw, _PY_ASCII_SPACE)
        # as parse_value: empty once trimmed (or null), before any rule
        empty = pc.binary_length(values).fill_null(0).to_numpy() == 0
        if lower:
            values = pc.ascii_lower(values)
        if www:
            values = pc.if_else(pc.starts_with(values, "www."), pc.utf8_slice_codeunits(values, 4), values)
        data = values.cast(pa.binary())
        if data.null_count:
            data = data.fill_null(b"")
        lengths = pc.binary_length(data).to_numpy()
        bad = None
        if pattern is not None:
            matched = pc.match_substring_regex(values, pattern).fill_null(True)
            bad = ~matched.to_numpy(zero_copy_only=False) & ~empty
            bad = bad if bad.any() else None
        prefixes = lengths.astype(">i4")
        if empty.any():
            if self.col.required:
                bad = empty if bad is None else bad | empty
            else:  # an empty value is NULL (text columns have no default)
                prefixes[empty] = -1
        lengths_arr = _fixed(prefixes, 4)
        if ascii_only:
            return [lengths_arr, data], bad
        ascii_ = pc.string_is_ascii(raw)
        if ascii_.null_count:
            ascii_ = ascii_.fill_null(True)
        if not pc.all(ascii_).as_py():
            other = pc.invert(ascii_)
            where = np.flatnonzero(other.to_numpy(zero_copy_only=False))
            fields, other_bad = self.fields(raw.filter(other).to_pylist())
            whole = list(_whole(fields))
            for i in other_bad:  # its row goes through the row-at-a-time path: any field will do
                whole[i] = NULL
            lengths_arr = pc.replace_with_mask(
                lengths_arr, other, pa.array([f[:4] for f in whole], pa.binary())
            )
            data = pc.replace_with_mask(data, other, pa.array([f[4:] for f in whole], pa.binary()))
            if bad is not None:
                bad[where] = False
            if other_bad:
                if bad is None:
                    bad = np.zeros(n, dtype=bool)
                bad[where[other_bad]] = True
        return [lengths_arr, data], bad

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

    def convert_arrow(
        self, raws: Sequence[pa.Array | None], ascii_only: bool = False
    ) -> tuple[list, np.ndarray | None]:
        """`raws`: one Arrow string array per entity column, in order (None: the column is absent, every value
        empty); `ascii_only`: the caller knows that every value is ASCII. The encoded columns (Arrow arrays and
        scalars, in order) and the flags of the rows with a value that breaks a rule (None: no row)."""
        pieces: list = []
        bad = None
        for codec, column in zip(self.codecs, raws, strict=True):
            if column is None:
                if codec.col.required:
                    raise ValueError(f"required column {codec.col.name} is absent")
                pieces.append(pa.scalar(codec.default, pa.binary()))
                continue
            p, wrong = codec.arrow_fields(column, ascii_only)
            pieces += p
            if wrong is not None:
                bad = wrong if bad is None else bad | wrong
        return pieces, bad


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

    def rows_arrow(self, pieces: list, lines: np.ndarray, keep: np.ndarray | None = None) -> bytes:
        """Rows from columns encoded by `Columns.convert_arrow` and their line numbers; with `keep`, only the
        rows whose flag is true."""
        numbers = np.empty(len(lines), dtype=[("length", ">i4"), ("value", ">i4")])
        numbers["length"] = 4
        numbers["value"] = lines
        head, tail = pa.scalar(self.head, pa.binary()), pa.scalar(self.tail, pa.binary())
        rows = pc.binary_join_element_wise(
            head, *pieces, tail, _fixed(numbers, 8), pa.scalar(b"", pa.binary())
        )
        if keep is not None:
            rows = rows.filter(pa.array(keep))
        if rows.null_count:  # every piece is filled: a null would drop its row
            raise AssertionError("a row assembled from the columns is null")
        if not len(rows):
            return b""
        offsets = np.frombuffer(rows.buffers()[1], np.int32)[rows.offset : rows.offset + len(rows) + 1]
        return memoryview(rows.buffers()[2])[offsets[0] : offsets[-1]].tobytes()

    def rows(self, pieces: Pieces, lines: Sequence[int], keep: Iterable[bool] | None = None) -> bytes:
        """Rows from encoded columns (`Columns.convert`) and their line numbers; with `keep`, only the rows
        whose flag is true."""
        rows = zip(repeat(self.head), *pieces, repeat(self.tail), map(_LINE.pack, repeat(4), lines))
        return b"".join(map(b"".join, rows if keep is None else compress(rows, keep)))
