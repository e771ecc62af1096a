"""Reading one landing file (CSV or JSONL, optionally gzipped) into validated rows and rejected rows.

Line numbers are physical lines of the decompressed file: a CSV header is line 1 and a record whose quoted
field spans several lines has the number of the line where it starts; a JSONL file's first line is line 1.
Blank lines are skipped (they are neither rows nor rejections) but still counted.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO

from ..entities import Entity
from .values import hash_ip, parse_row

CSV_SUFFIXES = (".csv", ".csv.gz")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")


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


def accepts(entity: Entity, name: str) -> bool:
    """Whether a file name is a data file of the entity's format."""
    return name.endswith(CSV_SUFFIXES if entity.format == "csv" else JSONL_SUFFIXES)


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
                raise FileError(f"line {number} is not valid UTF-8 ({e.reason} at byte {e.start})") from None
            yield text.removeprefix("\ufeff") if number == 1 else text
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        where = f" after line {number}" if number else ""
        what = "cannot be decompressed as gzip" if gzipped else "cannot be read"
        raise FileError(f"{what}{where}: {e}") from None


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


def _read_csv(entity: Entity, lines: Iterable[str], *, ip_hash_key: str, log) -> Iterator[Row | Rejected]:
    records = _records(lines)
    header_record = next(records, None)
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
    for line, raw, fields, error in records:
        if error:
            yield Rejected(line, raw, error)
        elif len(fields) != len(header):
            yield Rejected(line, raw, f"expected {len(header)} fields as in the header, got {len(fields)}")
        else:
            yield _validate(entity, dict(zip(header, fields, strict=True)), line, raw, ip_hash_key)


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


def _read_jsonl(entity: Entity, lines: Iterable[str], *, ip_hash_key: str, log) -> Iterator[Row | Rejected]:
    known = {c.name for c in entity.columns}
    extra: set[str] = set()
    for line, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        raw = _raw([text])
        try:
            # Numbers are kept as written (parse_float/parse_int), so that the decimal rules see the text.
            obj = json.loads(text, parse_float=str, parse_int=str, parse_constant=str)
        except ValueError as e:
            yield Rejected(line, _redact_json(entity, raw, ip_hash_key), f"not valid JSON: {e}")
            continue
        if not isinstance(obj, dict):
            yield Rejected(line, _redact_json(entity, raw, ip_hash_key), "not a JSON object")
            continue
        extra.update(k for k in obj if k not in known)
        fields, errors = {}, []
        for key, value in obj.items():
            if key in known:
                try:
                    fields[key] = _json_text(value)
                except ValueError as e:
                    errors.append(f"{key}: {e}")
        if errors:
            yield Rejected(line, _redact(entity, raw, fields, ip_hash_key), "; ".join(errors))
        else:
            yield _validate(entity, fields, line, raw, ip_hash_key)
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
