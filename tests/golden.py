"""Helpers to read the golden example's expected CSVs and compare warehouse/published outputs with them."""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from pathlib import Path


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def fmt_ts(value: dt.datetime | None) -> str:
    """SPEC section 9 timestamp format: YYYY-MM-DDTHH:MM:SSZ, with .ffffff only when microseconds != 0."""
    if value is None:
        return ""
    v = value.astimezone(dt.UTC)
    return v.strftime("%Y-%m-%dT%H:%M:%S") + (f".{v.microsecond:06d}" if v.microsecond else "") + "Z"


def fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return fmt_ts(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def query_rows(conn, sql: str) -> list[dict[str, str]]:
    cur = conn.execute(sql)
    names = [c.name for c in cur.description]
    return [{n: fmt(v) for n, v in zip(names, row, strict=True)} for row in cur.fetchall()]


def assert_same_rows(
    actual: list[dict],
    expected: list[dict],
    key: tuple[str, ...],
    columns: tuple[str, ...],
    *,
    what: str,
    decimals: dict[str, Decimal] | None = None,
) -> None:
    """Rows keyed by `key` must match on `columns`; numeric columns in `decimals` compare within a tolerance
    (a tolerance of 0 means exact decimal equality)."""
    decimals = decimals or {}
    a = {tuple(r[k] for k in key): r for r in actual}
    e = {tuple(r[k] for k in key): r for r in expected}
    missing, extra = sorted(set(e) - set(a)), sorted(set(a) - set(e))
    problems = []
    if missing:
        problems.append(f"{len(missing)} expected rows missing, e.g. {missing[:5]}")
    if extra:
        problems.append(f"{len(extra)} unexpected rows, e.g. {extra[:5]}")
    for k in sorted(set(a) & set(e)):
        for c in columns:
            av, ev = a[k][c], e[k][c]
            if c in decimals and av != "" and ev != "":
                if abs(Decimal(av) - Decimal(ev)) > decimals[c]:
                    problems.append(f"{k} {c}: got {av}, expected {ev}")
            elif av != ev:
                problems.append(f"{k} {c}: got {av!r}, expected {ev!r}")
    assert not problems, (
        f"{what}: "
        + "; ".join(problems[:25])
        + (f" ... ({len(problems)} problems)" if len(problems) > 25 else "")
    )
