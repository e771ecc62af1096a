"""The sample-data generator: deterministic, in the landing layout of SPEC section 4, realistic enough to
attribute and reward, and with the dirt of real exports (which the loader must reject exactly)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

import psycopg
import pytest

from referral_pipeline.entities import (
    BOOL,
    CURRENCY,
    DATE,
    DECIMAL,
    EMAIL,
    ENTITIES,
    ENUM,
    INTEGER,
    TIMESTAMP,
)
from referral_pipeline.generate import generate

START = date(2025, 1, 1)
DAYS = 60
FREE_MAIL = {
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "hotmail.com",
    "icloud.com",
    "aol.com",
    "proton.me",
    "gmx.com",
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("landing")
    return out, generate(out, START, DAYS, log=lambda m: None)


def read_lines(root: Path):
    """Every data line of the landing zone: (entity, dt, file relative to root, line number, record or None).
    The record is the dict of the CSV row or JSON object; None when the line is not one (wrong field count,
    not a JSON object)."""
    for ent in ENTITIES:
        for f in sorted((root / ent.path).glob("dt=*/*")):
            day = date.fromisoformat(f.parent.name.removeprefix("dt="))
            rel = f.relative_to(root).as_posix()
            text = (gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes()).decode()
            if ent.format == "csv":
                rows = list(csv.reader(io.StringIO(text)))
                header = rows[0]
                for n, row in enumerate(rows[1:], start=2):
                    yield (
                        ent,
                        day,
                        rel,
                        n,
                        dict(zip(header, row, strict=True)) if len(row) == len(header) else None,
                    )
            else:
                for n, line in enumerate(text.splitlines(), start=1):
                    obj = json.loads(line)
                    yield ent, day, rel, n, obj if isinstance(obj, dict) else None


def problem(ent, rec: dict | None) -> str | None:
    """A deliberately simple reading of the SPEC section 4 value rules: what is wrong with a row, if anything."""
    if rec is None:
        return "not a row"
    for c in ent.columns:
        v = str(rec.get(c.name) or "").strip()
        if not v:
            if c.required:
                return f"{c.name} missing"
            continue
        try:
            if c.type == TIMESTAMP:
                datetime.fromisoformat(v)
            elif c.type == DATE:
                date.fromisoformat(v)
            elif c.type == INTEGER:
                int(v)
            elif c.type == DECIMAL:
                d = Decimal(v)
                if c.min_value is not None and (d <= c.min_value if c.min_exclusive else d < c.min_value):
                    return f"{c.name} too small"
        except (ValueError, InvalidOperation):
            return f"{c.name} unparsable"
        if c.type == BOOL and v.lower() not in {"true", "false", "1", "0"}:
            return f"{c.name} not a bool"
        if c.type == ENUM and v.lower() not in c.choices:
            return f"{c.name} not in enum"
        if c.type == CURRENCY and not re.fullmatch("[A-Za-z]{3}", v):
            return f"{c.name} not a currency"
        if c.type == EMAIL and (v.count("@") != 1 or "." not in v.split("@")[1]):
            return f"{c.name} invalid email"
    return None


def utc(s: str) -> datetime:
    t = datetime.fromisoformat(s.strip())
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def valid_rows(root: Path) -> dict[str, list[tuple[date, dict]]]:
    rows = defaultdict(list)
    for ent, day, _, _, rec in read_lines(root):
        if problem(ent, rec) is None:
            rows[ent.path].append((day, rec))
    return rows


def test_same_arguments_give_identical_bytes(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert generate(a, START, 20, log=lambda m: None) == generate(b, START, 20, log=lambda m: None)
    generate(c, START, 20, seed=8, log=lambda m: None)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert any(not (c / f).exists() or (a / f).read_bytes() != (c / f).read_bytes() for f in files)


def test_layout_and_file_formats(dataset: tuple[Path, dict]) -> None:
    root, summary = dataset
    end = START + timedelta(days=DAYS - 1)
    files = [p for p in root.rglob("*") if p.is_file()]
    assert summary["files"] == len(files)
    for ent in ENTITIES:
        names = list((root / ent.path).glob("dt=*/*"))
        assert names, f"no files for {ent.path}"
        for f in names:
            assert START <= date.fromisoformat(f.parent.name.removeprefix("dt=")) <= end
            assert re.fullmatch(rf"{ent.name}-part-000[01]\.{ent.format}(\.gz)?", f.name), f
            if f.suffix == ".gz":
                assert f.read_bytes()[4:8] == b"\0\0\0\0", f"{f}: gzip header carries a modification time"
    # Every file of every partition is read: headers hold the required columns, no other unknown names but one.
    known = {ent.path: {c.name for c in ent.columns} for ent in ENTITIES}
    headers = Counter()
    for f in files:
        ent = next(e for e in ENTITIES if f.relative_to(root).as_posix().startswith(e.path + "/"))
        if ent.format == "csv":
            head = (gzip.open(f, "rt") if f.suffix == ".gz" else f.open()).readline().strip().split(",")
            assert set(ent.required_columns) <= set(head), f
            assert len(set(head) - known[ent.path]) <= 1, f
            headers[
                "shuffled" if head[: len(ent.columns)] != [c.name for c in ent.columns] else "ordered"
            ] += 1
            headers["extra"] += len(head) > len(ent.columns)
    counts = Counter(ent.path for ent, *_ in read_lines(root))
    assert counts == summary["rows"]
    # The dirt of real exports, at the level of files.
    assert sum(f.suffix == ".gz" for f in files) >= 10
    assert sum("part-0001" in f.name for f in files) >= 5
    assert headers["shuffled"] >= 5 and headers["extra"] >= 3 and headers["ordered"] > 100


def test_rows_that_must_be_rejected_are_listed_exactly(dataset: tuple[Path, dict]) -> None:
    root, summary = dataset
    bad = {(rel, line): problem(ent, rec) for ent, _, rel, line, rec in read_lines(root) if problem(ent, rec)}
    assert summary["dirty_rows"] == len(summary["rejects"]) == len(bad) >= 15
    assert {(r["file"], r["line"]) for r in summary["rejects"]} == set(bad)
    kinds = " ".join(bad.values())
    for kind in ("missing", "unparsable", "too small", "not in enum", "invalid email", "not a row"):
        assert kind in kinds


def test_duplicates_normalisation_and_value_styles(dataset: tuple[Path, dict]) -> None:
    root, summary = dataset
    seen: dict[tuple, set] = defaultdict(set)
    for ent, day, _, _, rec in read_lines(root):
        if ent.kind == "event" and problem(ent, rec) is None:
            seen[(ent.path, *(rec[k] for k in ent.key))].add(day)
    ids = Counter(k[0] for k in seen)
    rows = Counter()
    for ent, _, _, _, rec in read_lines(root):
        if ent.kind == "event" and problem(ent, rec) is None:
            rows[ent.path] += 1
    dupes = sum(rows[p] - ids[p] for p in rows)
    assert dupes == summary["duplicate_rows"] >= 8
    assert any(len(days) > 1 for days in seen.values()), "no duplicate across partitions"
    assert (
        rows["links/clicks"] > ids["links/clicks"]
        and rows["marketing/activities"] > ids["marketing/activities"]
    )

    texts = "\n".join(
        (gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes()).decode()
        for f in sorted(root.rglob("*.*"))
    )
    assert "WWW." in texts and "www." in texts
    assert re.search(r"[A-Z][A-Za-z0-9.]*@", texts), "no email with capitals"
    assert re.search(r",TRUE,|,1,|,0,", texts)
    assert re.search(r"T\d\d:\d\d:\d\dZ", texts) and re.search(r"T\d\d:\d\d:\d\d[+-]\d\d:\d\d", texts)
    assert re.search(r"T\d\d:\d\d:\d\d[,\"\n]", texts), "no naive timestamp"


def test_referential_plausibility(dataset: tuple[Path, dict]) -> None:
    root, _ = dataset
    rows = valid_rows(root)
    recs = {p: [r for _, r in v] for p, v in rows.items()}

    contacts = {r["contact_id"] for r in recs["crm/contacts"]}
    deals = defaultdict(list)
    for r in recs["crm/deals"]:
        deals[r["deal_id"]].append(r)
        assert not r["primary_contact_id"] or r["primary_contact_id"] in contacts, r
    links = {r["link_code"]: r["partner_id"] for r in recs["links/links"]}
    partners = {r["partner_id"] for r in recs["crm/partners"]}
    assert set(links.values()) <= partners
    assert {r["link_code"] for r in recs["links/clicks"]} <= set(links)
    assert {r["partner_id"] for r in recs["crm/referrals"]} <= partners

    # Most clicks come from visitors who convert, mostly with an email at a company domain.
    converted = {r["visitor_id"]: r["email"].strip().lower() for r in recs["links/conversions"]}
    clicks = recs["links/clicks"]
    assert sum(r["visitor_id"] in converted for r in clicks) > 0.5 * len(clicks)
    assert sum(e.split("@")[1] not in FREE_MAIL for e in converted.values()) > 0.6 * len(converted)
    assert len(converted) < len({r["visitor_id"] for r in clicks}), "every visitor converts"
    # A click-spam burst: more than 20 clicks from one ip on one link and UTC day.
    groups = Counter((r.get("ip_address"), r["link_code"], utc(r["clicked_at"]).date()) for r in clicks)
    assert max(n for (ip, *_), n in groups.items() if ip) > 20

    # Partner codes in marketing activities: by ?ref= and by utm_content with a partner medium; most have none.
    acts = recs["marketing/activities"]
    by_ref = [r for r in acts if re.search(r"[?&]ref=[^&]", r["landing_url"] or "")]
    by_utm = [r for r in acts if (r["utm_medium"] or "").lower() in {"partner", "referral", "affiliate"}]
    assert by_ref and by_utm and len(by_ref) + len(by_utm) < 0.5 * len(acts)
    assert any(r["utm_content"].strip() in links for r in by_utm)

    # Partners: the statuses, currencies and tax forms the payouts need.
    latest = {}
    for r in sorted(recs["crm/partners"], key=lambda r: utc(r["updated_at"])):
        latest[r["partner_id"]] = r
    assert len(latest) == 8
    assert {r["status"] for r in latest.values()} == {"active", "suspended", "terminated"}
    assert {r["payout_currency"] for r in latest.values()} == {"USD", "EUR", "GBP"}
    assert any(r["tax_form_on_file"].lower() in {"false", "0"} for r in latest.values())
    assert {r["partner_type"] for r in latest.values()} >= {
        "integrator",
        "affiliate",
        "customer",
        "consultant",
    }
    assert sum(utc(r["joined_at"]).date() < START for r in latest.values()) >= 6
    assert any(int(r["employee_count"]) < 50 for r in recs["crm/companies"])
    assert any(int(r["employee_count"]) >= 50 for r in recs["crm/companies"])

    # Referrals: every status; an accepted_at that arrives in a later version.
    refs = defaultdict(list)
    for r in recs["crm/referrals"]:
        refs[r["referral_id"]].append(r)
    assert {r["status"] for v in refs.values() for r in v} == {"submitted", "accepted", "rejected"}
    assert any(any(r["status"] == "accepted" and not r["accepted_at"] for r in v) for v in refs.values())

    # Deals: created in the window (except older customers' deals), every type, won, lost, deleted, currencies.
    in_window = {k: v for k, v in deals.items() if utc(v[0]["created_at"]).date() >= START}
    assert 15 <= len(in_window) <= 45
    final = {k: max(v, key=lambda r: utc(r["updated_at"])) for k, v in deals.items()}
    assert {r["deal_type"] for r in final.values()} == {"new_business", "expansion", "renewal"}
    assert {r["stage"] for r in final.values()} >= {"appointment", "closed_won", "closed_lost"}
    assert {r["currency"].upper() for r in final.values()} == {"USD", "EUR", "GBP"}
    assert all(r["closed_at"] for r in final.values() if r["stage"] == "closed_won")
    assert sum((r["is_deleted"] or "").lower() in {"true", "1"} for r in final.values()) == 1
    history = {(r["deal_id"], r["stage"]) for r in recs["crm/deal_stage_history"]}
    assert {(d, "qualified") for d in final if final[d]["stage"] == "closed_won"} <= history
    # Reversals: a partial refund, and refunds above the amount.
    reversed_ = defaultdict(Decimal)
    for r in {r["reversal_id"]: r for r in recs["crm/deal_reversals"]}.values():
        reversed_[r["deal_id"]] += Decimal(r["amount"])
    amounts = {k: Decimal(v["amount"]) for k, v in final.items()}
    assert any(0 < s < amounts[d] for d, s in reversed_.items())
    assert any(s > amounts[d] for d, s in reversed_.items())
    # fx rates: EUR and GBP on weekdays only, around their usual level.
    fx = recs["finance/fx_rates"]
    assert {r["currency"].upper() for r in fx} == {"EUR", "GBP"}
    assert all(date.fromisoformat(r["rate_date"]).weekday() < 5 for r in fx)
    assert all(
        Decimal("0.85") < Decimal(r["rate"]) < Decimal("0.97") for r in fx if r["currency"].upper() == "EUR"
    )


def test_rows_land_in_the_partition_of_their_day(dataset: tuple[Path, dict]) -> None:
    root, _ = dataset
    when = {"crm/deal_stage_history": "entered_at", "crm/deal_reversals": "occurred_at"}
    when |= {
        "marketing/activities": "occurred_at",
        "links/clicks": "clicked_at",
        "links/conversions": "converted_at",
    }
    late = total = 0
    for path, rows in valid_rows(root).items():
        col = when.get(path, "updated_at")
        if path in ("links/links", "finance/fx_rates"):
            continue
        for day, r in rows:
            occurred = utc(r[col]).date()
            total += 1
            if day == START:
                assert occurred <= START, (path, r)
            elif occurred != day:
                assert path in when and occurred < day, (path, day, r)  # re-delivered events only
                late += 1
    assert 0 < late < 0.01 * total


@pytest.mark.parametrize(
    ("start", "days"), [(date(2025, 3, 1), 1), (date(2024, 2, 27), 3), (date(2026, 12, 30), 9)]
)
def test_any_window(tmp_path: Path, start: date, days: int) -> None:
    summary = generate(tmp_path, start, days, log=lambda m: None)
    end = start + timedelta(days=days - 1)
    parts = {date.fromisoformat(p.name.removeprefix("dt=")) for p in tmp_path.glob("*/*/dt=*")}
    assert parts and min(parts) == start and max(parts) <= end
    rows = valid_rows(tmp_path)
    assert rows["links/clicks"] and rows["crm/partners"] and rows["crm/referrals"]
    # Every timestamp is at most the end of the window; an fx rate exists on or before the first day.
    for path, items in rows.items():
        for _, r in items:
            for k, v in r.items():
                if k.endswith("_at") and v and k != "joined_at":
                    assert utc(v).date() <= end, (path, r)
    assert min(date.fromisoformat(r["rate_date"]) for _, r in rows["finance/fx_rates"]) < start
    assert summary["dirty_rows"] == len(summary["rejects"]) > 0


def test_scales_and_refusals(tmp_path: Path) -> None:
    medium = generate(tmp_path / "m", START, 10, scale="medium", log=lambda m: None)
    small = generate(tmp_path / "s", START, 10, log=lambda m: None)
    assert medium["rows"]["links/clicks"] > 8 * small["rows"]["links/clicks"]
    assert medium["rows"]["crm/partners"] > 8 * small["rows"]["crm/partners"]
    with pytest.raises(FileExistsError, match="already holds exports"):
        generate(tmp_path / "s", START, 10, log=lambda m: None)
    with pytest.raises(ValueError, match="unknown scale"):
        generate(tmp_path / "x", START, 10, scale="huge", log=lambda m: None)
    with pytest.raises(ValueError, match="days"):
        generate(tmp_path / "x", START, 0, log=lambda m: None)


def test_loading_rejects_exactly_the_injected_dirt(tmp_path: Path, warehouse_url: str) -> None:
    from referral_pipeline.landing import load_partition

    days = 9
    summary = generate(tmp_path, START, days, log=lambda m: None)
    for n in range(days):
        for ent in ENTITIES:
            load_partition(
                warehouse_url,
                ent,
                START + timedelta(days=n),
                str(tmp_path),
                ip_hash_key="k",
                log=lambda m: None,
            )
    with psycopg.connect(warehouse_url) as conn:
        rejected = conn.execute("select _source_file, _line_number from raw.rejected_rows").fetchall()
        loaded = {e.path: conn.execute(f"select count(*) from raw.{e.table}").fetchone()[0] for e in ENTITIES}
    assert sorted(rejected) == sorted((r["file"], r["line"]) for r in summary["rejects"])
    rejected_per_entity = Counter(r["file"].rsplit("/", 2)[0] for r in summary["rejects"])
    assert loaded == {p: n - rejected_per_entity[p] for p, n in summary["rows"].items()}
