"""The generator's volume mode (`clicks_per_day`): the browsing traffic written column-wise stays valid exports
(every row passes the value rules but the listed dirt, lines as the per-row writer formats them), realistic
(clicks dominate, re-delivered rows, partitions of their day), loads with exactly the listed rejections, and
is a pure function of its arguments."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest
from test_generate import problem, read_lines, utc, valid_rows

from referral_pipeline.entities import ENTITIES
from referral_pipeline.generate import generate

START = date(2025, 3, 1)
DAYS = 8
CLICKS = 1500


@pytest.fixture(scope="module")
def volume(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("volume")
    return out, generate(out, START, DAYS, clicks_per_day=CLICKS, log=lambda m: None)


def test_deterministic_for_a_seed(volume: tuple[Path, dict], tmp_path: Path) -> None:
    root, summary = volume
    again = generate(tmp_path / "a", START, DAYS, clicks_per_day=CLICKS, log=lambda m: None)
    other = generate(tmp_path / "b", START, DAYS, clicks_per_day=CLICKS, seed=8, log=lambda m: None)
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert all((root / f).read_bytes() == (tmp_path / "a" / f).read_bytes() for f in files)
    assert again == summary
    assert other["rows"] != summary["rows"]


def test_volume_and_mix(volume: tuple[Path, dict]) -> None:
    root, summary = volume
    rows = summary["rows"]
    assert Counter(ent.path for ent, *_ in read_lines(root)) == rows
    assert summary["files"] == sum(1 for p in root.rglob("*") if p.is_file())
    # About CLICKS a day once the first days' visitors have come back; clicks dominate.
    assert 0.8 * CLICKS * DAYS < rows["links/clicks"] < 1.1 * CLICKS * DAYS
    assert rows["links/clicks"] > 5 * rows["marketing/activities"] > 5 * rows["links/conversions"]
    assert rows["crm/referrals"] and rows["crm/deals"] and rows["links/links"]
    # Every day has its clicks and activities (conversions follow clicks by hours), and some files are gzipped.
    for path in ("links/clicks", "marketing/activities"):
        assert len(list((root / path).glob("dt=*"))) == DAYS
    assert len(list((root / "links/conversions").glob("dt=*"))) >= DAYS - 2
    assert list(root.rglob("*.gz"))


def test_rows_are_valid_but_the_listed_dirt(volume: tuple[Path, dict]) -> None:
    root, summary = volume
    bad = {(rel, line): problem(ent, rec) for ent, _, rel, line, rec in read_lines(root) if problem(ent, rec)}
    assert summary["dirty_rows"] == len(summary["rejects"]) == len(bad) >= 15
    assert {(r["file"], r["line"]) for r in summary["rejects"]} == set(bad)


def test_lines_are_written_as_the_per_row_writer_writes_them(volume: tuple[Path, dict]) -> None:
    root, _ = volume
    for ent in ENTITIES:
        if ent.path not in ("links/clicks", "links/conversions", "marketing/activities"):
            continue
        for f in (root / ent.path).glob("dt=*/*"):
            text = (gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes()).decode()
            for line in text.splitlines()[ent.format == "csv" :]:
                if ent.format == "jsonl":
                    obj = json.loads(line)
                    if isinstance(obj, dict):
                        assert json.dumps(obj, ensure_ascii=False) == line
                else:
                    buf = io.StringIO()
                    csv.writer(buf, lineterminator="\n").writerow(next(csv.reader([line])))
                    assert buf.getvalue() == line + "\n"


def test_duplicates_and_partitions_of_their_day(volume: tuple[Path, dict]) -> None:
    root, summary = volume
    rows, ids = Counter(), {}
    when = {
        "links/clicks": "clicked_at",
        "links/conversions": "converted_at",
        "marketing/activities": "occurred_at",
    }
    late = 0
    for path, items in valid_rows(root).items():
        ent = next(e for e in ENTITIES if e.path == path)
        if ent.kind != "event":
            continue
        keys = set()
        for day, rec in items:
            rows[path] += 1
            keys.add(tuple(rec[k] for k in ent.key))
            if path in when:
                occurred = utc(rec[when[path]]).date()
                assert occurred <= day and (occurred == day or day > START), (path, day, rec)
                late += occurred != day
        ids[path] = len(keys)
    assert sum(rows[p] - ids[p] for p in rows) == summary["duplicate_rows"]
    assert rows["links/clicks"] - ids["links/clicks"] > 0.004 * rows["links/clicks"]
    assert 0 < late < 0.01 * sum(rows.values())


def test_references_resolve(volume: tuple[Path, dict]) -> None:
    root, _ = volume
    recs = {p: [r for _, r in v] for p, v in valid_rows(root).items()}
    links = {r["link_code"] for r in recs["links/links"]}
    clicks = recs["links/clicks"]
    assert {r["link_code"] for r in clicks} <= links
    visitors = {r["visitor_id"] for r in clicks}
    converted = {r["visitor_id"] for r in recs["links/conversions"]}
    assert len(converted & visitors) > 0.9 * len(converted)
    assert len(converted) < 0.2 * len(visitors)  # the added traffic is anonymous browsing
    assert sum("ip_address" in r for r in clicks) > 0.85 * len(clicks)
    end = START + timedelta(days=DAYS)
    assert all(utc(r["clicked_at"]).date() < end for r in clicks)


def test_loads_with_exactly_the_listed_rejections(volume: tuple[Path, dict], warehouse_url: str) -> None:
    from referral_pipeline.landing import load_partition

    root, summary = volume
    for n in range(DAYS):
        for ent in ENTITIES:
            load_partition(
                warehouse_url, ent, START + timedelta(days=n), str(root), ip_hash_key="k", log=lambda m: None
            )
    with psycopg.connect(warehouse_url) as conn:
        rejected = conn.execute("select _source_file, _line_number from raw.rejected_rows").fetchall()
        loaded = {e.path: conn.execute(f"select count(*) from raw.{e.table}").fetchone()[0] for e in ENTITIES}
    assert sorted(rejected) == sorted((r["file"], r["line"]) for r in summary["rejects"])
    rejected_per_entity = Counter(r["file"].rsplit("/", 2)[0] for r in summary["rejects"])
    assert loaded == {p: n - rejected_per_entity[p] for p, n in summary["rows"].items()}


def test_refusals(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="clicks_per_day"):
        generate(tmp_path, START, 3, clicks_per_day=0, log=lambda m: None)
