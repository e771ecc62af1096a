"""Reading one landing file (CSV or JSONL, optionally gzipped) into validated rows and rejected rows.

Line numbers are physical lines of the decompressed file: a CSV header is line 1 and a record whose quoted
field spans several lines has the number of the line where it starts; a JSONL file's first line is line 1.
Blank lines are skipped (they are neither rows nor rejections) but still counted.

Two readers share these rules. `read_file` reads row by row (`Row` and `Rejected` items); it is the reference.
`read_batches`, which the loader uses, reads a file in chunks of about 4 MB, splits each chunk into columns with
Arrow (its CSV reader with quoting off, its JSON reader) and converts them column by column into COPY BINARY
rows (see `columns`): the rows of a chunk that the column-wise path cannot take as they are (a CSV line holding
a quote, a NUL or a stray carriage return, a wrong number of fields, a JSON chunk Arrow would read otherwise
than json.loads, any value that breaks a rule) go through the same row-at-a-time code as `read_file`, so every
row value and every rejection (reason, raw line, hashed IP) is the same.
"""

from __future__ import annotations

import bisect
import csv
import gzip
import json
import operator
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from typing import IO

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json

from ..entities import Entity
from .columns import Columns, RowFormat, positions
from .values import hash_ip, parse_row

CSV_SUFFIXES = (".csv", ".csv.gz")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")
CHUNK_BYTES = 1 << 22  # decompressed bytes read at a time by read_batches


class FileError(Exception):
    """A problem that makes one file unloadable (the loader turns it into a LandingError for the partition)."""


@dataclass(frozen=True)
class Row:
    line: int
    values: tuple  # typed values in the entity's column order


@dataclass(frozen=True)
class Rejected:
    line: int
    raw_line: str
    reason: str


@dataclass
class Batch:
    """A chunk of one file: its valid rows as COPY BINARY data, and its rejected rows in line order."""

    data: bytes
    loaded: int
    rejected: list[Rejected] = field(default_factory=list)


def accepts(entity: Entity, name: str) -> bool:
    """Whether a file name is a data file of the entity's format."""
    return name.endswith(CSV_SUFFIXES if entity.format == "csv" else JSONL_SUFFIXES)


# --- the row-at-a-time reader (the reference) ----------------------------------------------------------------


def read_file(
    entity: Entity,
    relpath: str,
    stream: IO[bytes],
    *,
    ip_hash_key: str,
    log: Callable[[str], None],
) -> Iterator[Row | Rejected]:
    """Rows and rejections of one file, in line order. Raises FileError for a file that cannot be loaded."""
    gzipped = relpath.endswith(".gz")
    lines = _text_lines(gzip.GzipFile(fileobj=stream, mode="rb") if gzipped else stream, gzipped)
    reader = _read_csv if entity.format == "csv" else _read_jsonl
    yield from reader(entity, lines, ip_hash_key=ip_hash_key, log=lambda msg: log(f"{relpath}: {msg}"))


def _text_lines(binary: IO[bytes], gzipped: bool) -> Iterator[str]:
    """Decoded lines (line endings kept). A UTF-8 byte-order mark at the start is dropped."""
    number = 0
    try:
        for raw in binary:
            number += 1
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise _not_utf8(number, e) from None
            yield text.removeprefix("\ufeff") if number == 1 else text
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise _unreadable(e, number, gzipped) from None


def _not_utf8(number: int, e: UnicodeDecodeError) -> FileError:
    return FileError(f"line {number} is not valid UTF-8 ({e.reason} at byte {e.start})")


def _unreadable(e: BaseException, lines_read: int, gzipped: bool) -> FileError:
    where = f" after line {lines_read}" if lines_read else ""
    what = "cannot be decompressed as gzip" if gzipped else "cannot be read"
    return FileError(f"{what}{where}: {e}")


class _LineFeed:
    """Feeds lines to csv.reader and remembers which physical lines the current record came from."""

    def __init__(self, lines: Iterable[str]):
        self._lines = iter(lines)
        self.count = 0
        self.taken: list[str] = []

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.count += 1
        self.taken.append(line)
        return line


def _raw(parts: list[str]) -> str:
    return "".join(parts).rstrip("\r\n").replace("\x00", "\ufffd")


def _records(lines: Iterable[str]) -> Iterator[tuple[int, str, list[str] | None, str | None]]:
    """(start line, raw text, fields, csv error) of every non-blank CSV record."""
    feed = _LineFeed(lines)
    reader = csv.reader(feed, strict=True)
    while True:
        feed.taken = []
        start = feed.count + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield start, _raw(feed.taken), None, f"malformed CSV record: {e}"
            continue
        raw = _raw(feed.taken)
        if raw.strip():  # blank (or whitespace-only) lines are skipped
            yield start, raw, fields, None


def _csv_header(header_record: tuple | None, entity: Entity, log) -> list[str]:
    """The header's column names (trimmed, lower-case); FileError for a header the file cannot load with."""
    if header_record is None:
        raise FileError("is empty: a CSV file needs a header row")
    _, _, header, error = header_record
    if error:
        raise FileError(f"has an unreadable header row: {error}")
    header = [h.strip().lower() for h in header]
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        raise FileError(f"header names column(s) more than once: {', '.join(duplicated)}")
    missing = [c for c in entity.required_columns if c not in header]
    if missing:
        raise FileError(f"header lacks required column(s) {', '.join(missing)} (header: {', '.join(header)})")
    known = {c.name for c in entity.columns}
    extra = [h for h in header if h not in known]
    if extra:
        log(f"ignoring unknown column(s) {', '.join(extra)}")
    return header


def _csv_item(
    entity: Entity,
    header: list[str],
    line: int,
    raw: str,
    fields: list[str] | None,
    error: str | None,
    key: str,
) -> Row | Rejected:
    if error:
        return Rejected(line, raw, error)
    if len(fields) != len(header):
        return Rejected(line, raw, f"expected {len(header)} fields as in the header, got {len(fields)}")
    return _validate(entity, dict(zip(header, fields, strict=True)), line, raw, key)


def _read_csv(entity: Entity, lines: Iterable[str], *, ip_hash_key: str, log) -> Iterator[Row | Rejected]:
    records = _records(lines)
    header = _csv_header(next(records, None), entity, log)
    for line, raw, fields, error in records:
        yield _csv_item(entity, header, line, raw, fields, error, ip_hash_key)


def _json_text(value: object) -> str | None:
    """JSON scalar -> the text the value rules apply to (numbers keep their written form)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        raise ValueError(
            f"must be a single value, not a JSON {'object' if isinstance(value, dict) else 'array'}"
        )
    return str(value)


def _jsonl_item(entity: Entity, known: set, extra: set, line: int, text: str, key: str) -> Row | Rejected:
    """A non-blank JSONL line as a row or a rejection; unknown field names are added to `extra`."""
    raw = _raw([text])
    try:
        # Numbers are kept as written (parse_float/parse_int), so that the decimal rules see the text.
        obj = json.loads(text, parse_float=str, parse_int=str, parse_constant=str)
    except ValueError as e:
        return Rejected(line, _redact_json(entity, raw, key), f"not valid JSON: {e}")
    if not isinstance(obj, dict):
        return Rejected(line, _redact_json(entity, raw, key), "not a JSON object")
    extra.update(k for k in obj if k not in known)
    fields, errors = {}, []
    for name, value in obj.items():
        if name in known:
            try:
                fields[name] = _json_text(value)
            except ValueError as e:
                errors.append(f"{name}: {e}")
    if errors:
        return Rejected(line, _redact(entity, raw, fields, key), "; ".join(errors))
    return _validate(entity, fields, line, raw, key)


def _read_jsonl(entity: Entity, lines: Iterable[str], *, ip_hash_key: str, log) -> Iterator[Row | Rejected]:
    known = {c.name for c in entity.columns}
    extra: set[str] = set()
    for line, text in enumerate(lines, start=1):
        if text.strip():
            yield _jsonl_item(entity, known, extra, line, text, ip_hash_key)
    if extra:
        log(f"ignoring unknown field(s) {', '.join(sorted(extra))}")


def _validate(entity: Entity, fields: dict, line: int, raw: str, ip_hash_key: str) -> Row | Rejected:
    values, errors = parse_row(entity, fields, ip_hash_key=ip_hash_key)
    if errors:
        return Rejected(line, _redact(entity, raw, fields, ip_hash_key), "; ".join(errors))
    return Row(line, values)


# --- never store a raw ip address, not even in a rejected row's raw line -------------------------------------


def _redact(entity: Entity, raw: str, fields: dict, key: str) -> str:
    """The raw line with the value of every hashed column (ip_address) replaced by its hash."""
    for col in entity.columns:
        value = (fields.get(col.name) or "").strip() if col.stored_as else ""
        if value:
            raw = raw.replace(value, f"hmac-sha256:{hash_ip(value, key)}")
    return raw


def _redact_json(entity: Entity, raw: str, key: str) -> str:
    """Like _redact for a line that is not a JSON object: hash any `"ip_address": "..."` found in the text."""
    for col in entity.columns:
        if col.stored_as:
            pattern = re.compile(rf'("{re.escape(col.name)}"\s*:\s*")([^"]*)(")')
            raw = pattern.sub(lambda m: m[1] + f"hmac-sha256:{hash_ip(m[2].strip(), key)}" + m[3], raw)
    return raw


# --- the batch reader (what the loader uses) -------------------------------------------------------------------


def read_batches(
    entity: Entity,
    relpath: str,
    stream: IO[bytes],
    fmt: RowFormat,
    *,
    ip_hash_key: str,
    log: Callable[[str], None],
) -> Iterator[Batch]:
    """The file's valid rows as COPY BINARY data in `fmt`, and its rejections, chunk by chunk in line order.
    Raises FileError for a file that cannot be loaded (like `read_file`, with the same messages)."""
    gzipped = relpath.endswith(".gz")
    chunks = _Chunks(gzip.GzipFile(fileobj=stream, mode="rb") if gzipped else stream, gzipped)
    file_log = lambda msg: log(f"{relpath}: {msg}")  # noqa: E731
    if entity.format == "csv":
        yield from _CsvBatches(entity, chunks, fmt, ip_hash_key).batches(file_log)
    else:
        yield from _jsonl_batches(entity, chunks, fmt, ip_hash_key, file_log)


class _Chunk:
    """Whole lines of a file, decoded: `data` (UTF-8 bytes, without a byte-order mark), `text`, the number of
    the first line, and whether the last line is the file's last without a newline (`final`)."""

    __slots__ = ("data", "text", "first", "final", "offsets", "count", "ascii", "_lines")

    def __init__(self, data: bytes, text: str, first: int, final: bool):
        self.data, self.text, self.first, self.final = data, text, first, final
        ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10) + 1
        tail = [len(data)] if final else []
        # where each line starts in `data`, and the end of `data`
        self.offsets = np.concatenate(([0], ends, tail)).astype(np.int64)
        self.count = len(self.offsets) - 1
        self.ascii = data.isascii()
        self._lines: list[str] | None = None

    @property
    def lines(self) -> list[str]:
        """The lines without their newline."""
        if self._lines is None:
            self._lines = self.text.split("\n")
            if not self.final:
                self._lines.pop()  # the text ends with a newline
        return self._lines

    def ending(self, i: int) -> str:
        """Line `i` with its line ending, as the row-at-a-time reader sees it."""
        if self._lines is None:
            return self.data[self.offsets[i] : self.offsets[i + 1]].decode()
        return self._lines[i] if self.final and i == self.count - 1 else self._lines[i] + "\n"

    def record(self, i: int) -> str:
        """Line `i` without its line ending (a CSV record of one line)."""
        return self.ending(i).removesuffix("\n").removesuffix("\r")


class _Chunks:
    """The decoded lines of a file, about CHUNK_BYTES at a time (`_Chunk`s).

    Errors surface where the row-at-a-time reader meets them: the lines before a line that is not UTF-8 are
    returned first, and the error is raised by the next call."""

    def __init__(self, binary: IO[bytes], gzipped: bool):
        self._read = binary.read1 if gzipped else binary.read
        self._gzipped = gzipped
        self._carry = b""
        self._eof = False
        self._error: FileError | None = None
        self.lines_read = 0

    def __iter__(self) -> Iterator[_Chunk]:
        return self

    def __next__(self) -> _Chunk:
        if self._error:
            raise self._error
        while not self._eof:
            try:
                data = self._read(CHUNK_BYTES)
            except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
                raise _unreadable(e, self.lines_read, self._gzipped) from None
            if not data:
                self._eof = True
                if self._carry:
                    return self._decoded(self._carry, final=True)
                break
            if self._carry:
                data = self._carry + data
            cut = data.rfind(b"\n") + 1
            self._carry = data[cut:]
            if cut:
                return self._decoded(data[:cut] if self._carry else data, final=False)
        raise StopIteration

    def _decoded(self, data: bytes, final: bool) -> _Chunk:
        first = self.lines_read + 1
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            start = data.rfind(b"\n", 0, e.start) + 1  # the line that holds the error, decoded alone
            end = data.find(b"\n", e.start)
            try:
                data[start : len(data) if end < 0 else end + 1].decode("utf-8")
            except UnicodeDecodeError as in_line:
                e = in_line
            self._error = _not_utf8(first + data.count(b"\n", 0, start), e)
            if not start:
                raise self._error from None
            data, final = data[:start], False
            text = data.decode("utf-8")
        if first == 1 and text.startswith("\ufeff"):
            text, data = text[1:], data[3:]
        chunk = _Chunk(data, text, first, final)
        self.lines_read += chunk.count
        return chunk


def _keep(n: int, drop: Iterable[int]) -> list[bool]:
    """The keep-mask of `n` items without the positions in `drop`."""
    keep = [True] * n
    for i in drop:
        keep[i] = False
    return keep


def _without(items: list, drop: Iterable[int]) -> tuple[list, list[bool]]:
    """`items` without the positions in `drop`, and the keep-mask used."""
    keep = _keep(len(items), drop)
    return list(compress(items, keep)), keep


def _added(numbers: Sequence[int], first: int) -> Sequence[int]:
    if isinstance(numbers, range):
        return range(numbers.start + first, numbers.stop + first)
    return list(map(first.__add__, numbers))


class _CsvBatches:
    """CSV chunks -> batches. A line with no quote, NUL, stray carriage return or over-long field is a record
    of its own, split on commas (by Arrow); the record starting at any other line is read by csv.reader exactly
    as `_records` reads it (possibly over several lines, beyond the chunk)."""

    def __init__(self, entity: Entity, chunks: _Chunks, fmt: RowFormat, key: str):
        self.entity = entity
        self.chunks = chunks
        self.fmt = fmt
        self.key = key
        self.limit = csv.field_size_limit()
        # the current chunk; `pos` is its next line to read
        self.chunk = _Chunk(b"", "", 1, False)
        self.pos = 0
        self._special_of: _Chunk | None = None
        self._special: list[int] = []

    def _next_chunk(self) -> bool:
        chunk = next(self.chunks, None)
        if chunk is None:
            return False
        self.chunk, self.pos = chunk, 0
        return True

    def _feed(self) -> Iterator[str]:
        """The remaining lines one at a time with their line ending, pulling chunks as needed."""
        while True:
            while self.pos < self.chunk.count:
                self.pos += 1
                yield self.chunk.ending(self.pos - 1)
            if not self._next_chunk():
                return

    def batches(self, log: Callable[[str], None]) -> Iterator[Batch]:
        self.header = _csv_header(next(_records(self._feed()), None), self.entity, log)
        self.width = len(self.header)
        index = {name: i for i, name in enumerate(self.header)}
        self.at = [index.get(c.name) for c in self.entity.columns]
        self.columns = Columns(self.entity, self.key)
        while self.pos < self.chunk.count or self._next_chunk():
            batch = Batch(b"", 0)
            parts: list[bytes] = []
            while self.pos < self.chunk.count:
                special = self._special_lines()
                k = bisect.bisect_left(special, self.pos)
                if k < len(special):
                    self._fast(special[k], batch, parts)
                    self._exact_record(batch, parts)  # may go on into the next chunk
                else:
                    self._fast(self.chunk.count, batch, parts)
            batch.data = b"".join(parts)
            batch.rejected.sort(key=operator.attrgetter("line"))
            yield batch

    def _special_lines(self) -> list[int]:
        """The chunk's lines that csv.reader must read (computed once per chunk)."""
        chunk = self.chunk
        if self._special_of is chunk:
            return self._special
        data = chunk.data
        self._special_of, self._special = chunk, []
        plain = (
            self.width >= 2
            and b'"' not in data
            and b"\x00" not in data
            and (b"\r" not in data or data.count(b"\r") == data.count(b"\r\n"))
            and (len(data) <= self.limit or int(np.diff(chunk.offsets).max()) <= self.limit)
        )
        if plain:  # the common case, told from the bytes alone
            return self._special
        text, lines = chunk.text, chunk.lines
        special: set[int] = set()
        for char in ('"', "\x00"):
            if char in text:
                special.update(positions(map(operator.contains, lines, repeat(char))))
        if "\r" in text:
            special.update(
                positions(map(operator.contains, map(str.removesuffix, lines, repeat("\r")), repeat("\r")))
            )
        if lines and max(map(len, lines)) > self.limit:
            special.update(positions(map(self.limit.__lt__, map(len, lines))))
        if self.width < 2:  # a blank line would pass for a record of one empty field
            special = set(range(len(lines)))
        self._special = sorted(special)
        return self._special

    def _exact_record(self, batch: Batch, parts: list[bytes]) -> None:
        start = self.chunk.first + self.pos
        feed = _LineFeed(self._feed())
        try:
            fields, error = next(csv.reader(feed, strict=True)), None
        except csv.Error as e:
            fields, error = None, f"malformed CSV record: {e}"
        raw = _raw(feed.taken)
        if error or raw.strip():
            self._add(_csv_item(self.entity, self.header, start, raw, fields, error, self.key), batch, parts)

    def _add(self, item: Row | Rejected, batch: Batch, parts: list[bytes]) -> None:
        if isinstance(item, Rejected):
            batch.rejected.append(item)
        else:
            parts.append(self.fmt.row(item.values, item.line))
            batch.loaded += 1

    def _one_line(self, i: int, batch: Batch, parts: list[bytes]) -> None:
        """Line `i` of the chunk, a record of its own (no quote), through the row-at-a-time path."""
        text = self.chunk.record(i)
        if text.strip():
            line = self.chunk.first + i
            self._add(
                _csv_item(self.entity, self.header, line, text, text.split(","), None, self.key), batch, parts
            )

    def _fast(self, end: int, batch: Batch, parts: list[bytes]) -> None:
        """Lines [pos, end) of the chunk, none of them special: one record per line, split on commas, converted
        column by column. Lines with another number of fields (blank ones too) and rows with a value that breaks
        a rule go through the row-at-a-time path."""
        begin, self.pos = self.pos, end
        if begin >= end:
            return
        chunk = self.chunk
        split = self._split_by_reader(begin, end) or self._split_by_lines(begin, end)
        columns, at, wrong = split
        for i in wrong:
            self._one_line(int(i), batch, parts)
        if not len(at):
            return
        columns, bad = self.columns.convert_arrow(columns, chunk.ascii)
        if bad is not None:
            for i in at[bad]:
                self._one_line(int(i), batch, parts)
        parts.append(self.fmt.rows_arrow(columns, at + chunk.first, None if bad is None else ~bad))
        batch.loaded += len(at) - (0 if bad is None else int(bad.sum()))

    def _split_by_reader(self, begin: int, end: int) -> tuple[list, np.ndarray, np.ndarray] | None:
        """Lines [begin, end) split by Arrow's CSV reader (quoting off): the entity's columns (None: absent), the
        positions of the lines that are records of the header's width, and of those that are not. None when a
        line is too short to tell a blank line from a record (the reader takes a blank line for a record)."""
        chunk = self.chunk
        offsets = chunk.offsets[begin : end + 1]
        if int(np.diff(offsets).min()) <= 2 or chunk.data.startswith(b"\xef\xbb\xbf", int(offsets[0])):
            return None  # (the reader also drops a byte-order mark at the start)
        wrong: list[int] = []

        def other_width(row) -> str:
            wrong.append(row.number)
            return "skip"

        names = [f"f{i}" for i in range(self.width)]
        wanted = [names[i] for i in self.at if i is not None]
        start, stop = int(offsets[0]), int(offsets[-1])
        table = pa_csv.read_csv(
            pa.py_buffer(chunk.data).slice(start, stop - start),
            read_options=pa_csv.ReadOptions(
                column_names=names, use_threads=False, block_size=stop - start + 1
            ),
            parse_options=pa_csv.ParseOptions(
                quote_char=False,
                escape_char=False,
                double_quote=False,
                newlines_in_values=False,
                ignore_empty_lines=False,
                invalid_row_handler=other_width,
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in wanted},
                include_columns=wanted,
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        lines = np.arange(begin, end)
        if table.num_rows + len(wrong) != end - begin:
            return None
        records = np.ones(end - begin, dtype=bool)
        records[np.asarray(wrong, dtype=np.int64) - 1] = False  # the reader numbers lines from 1
        columns = [None if i is None else table.column(names[i]).combine_chunks() for i in self.at]
        return columns, lines[records], lines[~records]

    def _split_by_lines(self, begin: int, end: int) -> tuple[list, np.ndarray, np.ndarray]:
        """Like `_split_by_reader`, each line split on commas by Arrow's string kernels."""
        chunk = self.chunk
        offsets = chunk.offsets[begin : end + 1].astype(np.int32)
        lines = pa.StringArray.from_buffers(end - begin, pa.py_buffer(offsets), pa.py_buffer(chunk.data))
        records = pc.split_pattern(lines, ",")  # the last field keeps the line ending: every value is trimmed
        at = np.arange(begin, end)
        wrong = pc.list_value_length(records).to_numpy() != self.width
        if wrong.any():
            records = records.filter(pa.array(~wrong))
        return [None if i is None else pc.list_element(records, i) for i in self.at], at[~wrong], at[wrong]


def _jsonl_batches(entity: Entity, chunks: _Chunks, fmt: RowFormat, key: str, log) -> Iterator[Batch]:
    """JSONL chunks -> batches: each chunk by Arrow's JSON reader (`_jsonl_arrow`) when it can read it exactly
    as the row-at-a-time reader would, else line by line with orjson (`_jsonl_lines`)."""
    known = {c.name for c in entity.columns}
    names = [c.name for c in entity.columns]
    converter = Columns(entity, key)
    options = pa_json.ParseOptions(
        explicit_schema=pa.schema([(name, pa.string()) for name in names]),
        unexpected_field_behavior="infer",
        newlines_in_values=False,
    )
    extra: set[str] = set()
    for chunk in chunks:
        batch = _jsonl_arrow(entity, chunk, fmt, key, converter, options, known, extra)
        yield batch or _jsonl_lines(entity, chunk, fmt, key, converter, known, extra)
    if extra:
        log(f"ignoring unknown field(s) {', '.join(sorted(extra))}")


# Text that Arrow's JSON reader reads otherwise than json.loads, or that the column-wise path leaves to the
# row-at-a-time path: NUL (escaped or not), escapes of UTF-16 surrogates (lone ones are refused differently),
# a carriage return not before a newline; and, in fields the entity does not know, NaN and Infinity spellings
# (Arrow also takes `-NaN` and `Inf`): looked for only when such a field holds a number or a nested value.
_JSON_ESCAPES = (b"\\u0000", b"\\ud", b"\\uD")
_JSON_CONSTANTS = (b"NaN", b"Inf")


def _odd_json(data: bytes) -> bool:
    """Whether the text holds a NUL, an escape of NUL or of a surrogate, or a stray carriage return (single
    bytes are looked for first: they are found at memory speed)."""
    if b"\x00" in data:
        return True
    if b"\\" in data and any(map(data.__contains__, _JSON_ESCAPES)):
        return True
    return b"\r" in data and data.count(b"\r") != data.count(b"\r\n")


# Bytes Arrow's JSON reader parses at a time (a chunk with a longer line goes line by line).
_JSON_BLOCK = 1 << 20
_PLAIN_JSON_TYPES = (pa.string(), pa.null(), pa.bool_(), pa.int64())


def _jsonl_arrow(
    entity: Entity,
    chunk: _Chunk,
    fmt: RowFormat,
    key: str,
    converter: Columns,
    options: pa_json.ParseOptions,
    known: set,
    extra: set,
) -> Batch | None:
    """A chunk read by Arrow's JSON reader; None if the chunk must be read line by line: a line that does not
    start with `{` (blank lines, other values), odd text (`_odd_json`), or anything the reader refuses (invalid
    JSON, a duplicate key, a known field that is not a string or null) or reads as another number of objects
    than lines. Rows with a value that breaks a rule go through the row-at-a-time path."""
    data = chunk.data
    if not chunk.count or _odd_json(data):
        return None
    if not (np.frombuffer(data, np.uint8)[chunk.offsets[:-1]] == 0x7B).all():
        return None
    try:
        table = pa_json.read_json(
            pa.py_buffer(data),
            read_options=pa_json.ReadOptions(use_threads=False, block_size=_JSON_BLOCK),
            parse_options=options,
        )
    except pa.ArrowInvalid:
        return None
    if table.num_rows != chunk.count:
        return None
    unknown = [table.schema.field(name) for name in table.column_names if name not in known]
    if any(f.type not in _PLAIN_JSON_TYPES for f in unknown) and any(map(data.__contains__, _JSON_CONSTANTS)):
        return None
    extra.update(f.name for f in unknown)
    n = chunk.count
    # ASCII text without a backslash (no escape) holds only ASCII values
    ascii_only = chunk.ascii and b"\\" not in data
    columns, bad = converter.convert_arrow(
        [table.column(c.name).combine_chunks() for c in entity.columns], ascii_only
    )
    batch = Batch(b"", n)
    parts = [fmt.rows_arrow(columns, np.arange(chunk.first, chunk.first + n), None if bad is None else ~bad)]
    if bad is not None:
        batch.loaded -= int(bad.sum())
        for i in np.flatnonzero(bad):
            item = _jsonl_item(entity, known, extra, chunk.first + int(i), chunk.ending(int(i)), key)
            if isinstance(item, Rejected):
                batch.rejected.append(item)
            else:
                parts.append(fmt.row(item.values, item.line))
                batch.loaded += 1
    batch.data = b"".join(parts)
    return batch


def _jsonl_lines(
    entity: Entity, chunk: _Chunk, fmt: RowFormat, key: str, converter: Columns, known: set, extra: set
) -> Batch:
    """A chunk line by line: lines are parsed by orjson; a line that it cannot parse, that is not a JSON object,
    that holds a NUL, or with a known field that is not a string or null (numbers must keep their written form:
    see Codec) goes through `_jsonl_item` (json.loads, like the row-at-a-time reader)."""
    text, lines, first = chunk.text, chunk.lines, chunk.first
    names = [c.name for c in entity.columns]
    exact: set[int] = set()  # positions in `lines` for the row-at-a-time path
    drop: set[int] = set()  # positions not parsed here: blank lines and `exact`
    if "" in lines or any(map(str.isspace, lines)):
        drop.update(positions(map(operator.not_, map(str.strip, lines))))
    for char in ("\x00", "\\u0000"):
        if char in text:
            exact.update(positions(map(operator.contains, lines, repeat(char))))
    exact -= drop
    drop |= exact
    if drop:
        todo, keep = _without(lines, drop)
        at: Sequence[int] = list(compress(range(len(lines)), keep))
    else:
        todo, at = lines, range(len(lines))
    objs: list = []
    rest = iter(todo)
    while True:
        try:
            objs.extend(map(orjson.loads, rest))
            break
        except orjson.JSONDecodeError:
            objs.append(None)
    bad = positions(map(operator.is_not, map(type, objs), repeat(dict)))
    if bad:
        exact.update(at[i] for i in bad)
        objs, keep = _without(objs, bad)
        at = list(compress(at, keep))
    if objs:
        extra.update(set().union(*objs).difference(known))
    columns, wrong = converter.convert([list(map(dict.get, objs, repeat(name))) for name in names])
    batch = Batch(b"", 0)
    parts: list[bytes] = []
    if at:
        exact.update(at[i] for i in wrong)
        parts.append(fmt.rows(columns, _added(at, first), _keep(len(at), wrong) if wrong else None))
        batch.loaded += len(at) - len(wrong)
    for i in sorted(exact):
        item = _jsonl_item(entity, known, extra, first + i, chunk.ending(i), key)
        if isinstance(item, Rejected):
            batch.rejected.append(item)
        else:
            parts.append(fmt.row(item.values, item.line))
            batch.loaded += 1
    batch.data = b"".join(parts)
    return batch
