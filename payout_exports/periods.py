"""Payout periods (see docs/rules.md, Payout batches): UTC calendar months, written YYYY-MM."""

from __future__ import annotations

import datetime as dt

UTC = dt.UTC


def period_of(instant: dt.datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m")


def period_start(period: str) -> dt.datetime:
    try:
        day = dt.date.fromisoformat(f"{period}-01")
    except ValueError:
        raise ValueError(f"invalid payout period {period!r}; expected YYYY-MM") from None
    return dt.datetime(day.year, day.month, 1, tzinfo=UTC)


def next_period(period: str) -> str:
    start = period_start(period)
    return f"{start.year + 1}-01" if start.month == 12 else f"{start.year}-{start.month + 1:02d}"


def period_end(period: str) -> dt.datetime:
    """The first instant after the period (exclusive end)."""
    return period_start(next_period(period))


def cutoff(period: str) -> dt.datetime:
    """The last instant of the period: payable_at <= cutoff means payable_at < the next month's first instant."""
    return period_end(period) - dt.timedelta(microseconds=1)


def batch_id(period: str) -> str:
    return f"batch-{period}"


def due_periods(
    run_date: dt.date, earliest_payable: dt.datetime | None, last_recorded: str | None
) -> list[str]:
    """Periods a run for run_date (read as run_date 00:00 UTC) must publish, oldest first: every period that ended
    before that instant, from the month of the earliest payable_at (nothing while there is no event), and once
    any period is recorded, only periods after the last recorded one."""
    if last_recorded is not None:
        first = next_period(last_recorded)
    elif earliest_payable is not None:
        first = period_of(earliest_payable)
    else:
        return []
    run_instant = dt.datetime(run_date.year, run_date.month, run_date.day, tzinfo=UTC)
    periods = []
    p = first
    while period_end(p) <= run_instant:
        periods.append(p)
        p = next_period(p)
    return periods


def format_ts(value: dt.datetime) -> str:
    """YYYY-MM-DDTHH:MM:SSZ in UTC, with .ffffff only when the microseconds are not 0."""
    if value.tzinfo is None:
        raise ValueError(f"timestamp without time zone: {value!r}")
    v = value.astimezone(UTC)
    text = v.strftime("%Y-%m-%dT%H:%M:%S")
    if v.microsecond:
        text += f".{v.microsecond:06d}"
    return text + "Z"
