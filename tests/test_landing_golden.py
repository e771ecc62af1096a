"""The golden landing zone, loaded day by day like the nightly job does (SPEC section 4)."""

from __future__ import annotations

import csv
import gzip
import time
from datetime import date, timedelta
from pathlib import Path

import boto3
import psycopg
import pytest

from referral_pipeline.entities import ENTITIES, Entity, entity
from referral_pipeline.landing import load_partition
from referral_pipeline.warehouse import ensure_schema

FIRST_DAY, LAST_DAY = date(2025, 1, 1), date(2025, 3, 1)
DAYS = [FIRST_DAY + timedelta(n) for n in range((LAST_DAY - FIRST_DAY).days + 1)]
KEY = "golden-test-key"
VOLATILE = {"_load_batch_id", "_loaded_at"}


def load_days(url: str, landing_uri: str, days=DAYS, entities=ENTITIES) -> list[str]:
    logs: list[str] = []
    for day in days:
        for e in entities:
            load_partition(url, e, day, landing_uri, ip_hash_key=KEY, log=logs.append)
    return logs


def table_rows(conn: psycopg.Connection, table: str, exclude=VOLATILE) -> list[tuple]:
    columns = [
        r[0]
        for r in conn.execute(
            "select column_name from information_schema.columns where table_schema = 'raw' and table_name = %s"
            " order by ordinal_position",
            (table,),
        )
        if r[0] not in exclude
    ]
    listed = ", ".join(columns)
    return conn.execute(f"select {listed} from raw.{table} order by {listed}").fetchall()


def snapshot(url: str) -> dict[str, list[tuple]]:
    """Every raw table's content, without the per-load batch id and load time."""
    with psycopg.connect(url) as conn:
        snap = {e.table: table_rows(conn, e.table) for e in ENTITIES}
        snap["rejected_rows"] = table_rows(conn, "rejected_rows")
        snap["load_batches"] = table_rows(
            conn, "load_batches", exclude={"load_batch_id", "started_at", "finished_at"}
        )
    return snap


def expected_rejections(golden_dir: Path) -> set[tuple[str, int, str]]:
    with open(golden_dir / "expected_rejected_rows.csv", newline="", encoding="utf-8") as f:
        return {(r["file"], int(r["line"]), r["raw_line"]) for r in csv.DictReader(f)}


def data_lines(golden_dir: Path, e: Entity) -> int:
    """Rows in the entity's golden files: non-blank lines, minus the header of each CSV file."""
    total = 0
    for path in (golden_dir / "landing" / e.path).glob("dt=*/*"):
        text = (gzip.open(path) if path.name.endswith(".gz") else path.open("rb")).read().decode()
        total += sum(1 for line in text.splitlines() if line.strip()) - (e.format == "csv")
    return total


@pytest.fixture(scope="module")
def golden_loaded(new_database, golden_dir: Path) -> str:
    """One warehouse with the whole golden landing zone loaded (shared by this module's tests)."""
    url = new_database("wh")
    ensure_schema(url)
    started = time.perf_counter()
    load_days(url, str(golden_dir / "landing"))
    print(
        f"golden landing: {len(DAYS)} days x {len(ENTITIES)} entities in {time.perf_counter() - started:.1f}s"
    )
    return url


def test_golden_rejects_exactly_the_expected_rows(golden_loaded: str, golden_dir: Path):
    with psycopg.connect(golden_loaded) as conn:
        rejected = conn.execute(
            "select entity, _partition_date, _source_file, _line_number, raw_line, reason from raw.rejected_rows"
        ).fetchall()
    assert {(f, line, raw) for _, _, f, line, raw, _ in rejected} == expected_rejections(golden_dir)
    for entity_path, day, file, _, _, reason in rejected:
        assert file.startswith(f"{entity_path}/dt={day.isoformat()}/")
        field = reason.split(":")[0]
        assert field in {c.name for c in entity(entity_path).columns}, reason


def test_golden_loads_every_other_row_with_lineage(golden_loaded: str, golden_dir: Path):
    rejections = expected_rejections(golden_dir)
    with psycopg.connect(golden_loaded) as conn:
        for e in ENTITIES:
            rejected = sum(1 for f, _, _ in rejections if f.startswith(e.path + "/"))
            loaded, bad_lineage = conn.execute(
                f"select count(*), count(*) filter (where _source_file not like %s || '/dt=' || _partition_date"
                f" || '/%%' or _line_number < 1) from raw.{e.table}",
                (e.path,),
            ).fetchone()
            assert loaded == data_lines(golden_dir, e) - rejected, e.path
            assert bad_lineage == 0
            batches = conn.execute(
                "select count(*), sum(rows_loaded) from raw.load_batches where entity = %s", (e.path,)
            ).fetchone()
            assert batches == (len(DAYS), loaded)
        # Normalisation visible in the golden data: WWW./capitals in domains, a lower-case currency.
        assert conn.execute(
            "select count(*) from raw.crm__companies where company_domain <> lower(company_domain)"
            " or company_domain like 'www.%'"
        ).fetchone() == (0,)
        assert {r[0] for r in conn.execute("select distinct currency from raw.crm__deals")} <= {
            "USD",
            "EUR",
            "GBP",
        }


def test_rerunning_a_day_leaves_identical_tables(golden_loaded: str, golden_dir: Path):
    before = snapshot(golden_loaded)
    with psycopg.connect(golden_loaded) as conn:
        old_batches = {r[0] for r in conn.execute("select load_batch_id from raw.load_batches")}
    # 2025-01-07 holds most of the rejected rows; 2025-01-19 has a partition split over two files.
    load_days(golden_loaded, str(golden_dir / "landing"), days=[date(2025, 1, 7), date(2025, 1, 19)])
    assert snapshot(golden_loaded) == before
    with psycopg.connect(golden_loaded) as conn:
        new_batches = {r[0] for r in conn.execute("select load_batch_id from raw.load_batches")}
        assert len(new_batches - old_batches) == 2 * len(ENTITIES)
        # lineage points at the new batches only
        assert conn.execute(
            "select count(distinct _load_batch_id) from raw.crm__deals where _partition_date = '2025-01-07'"
        ).fetchone() == (1,)


def test_s3_landing_loads_like_the_local_folder(
    golden_loaded: str, golden_dir: Path, s3_bucket: str, new_database
):
    s3 = boto3.client("s3")
    root = golden_dir / "landing"
    for path in sorted(root.rglob("*")):
        if path.is_file():
            s3.upload_file(str(path), s3_bucket, f"exports/landing/{path.relative_to(root).as_posix()}")
    s3_url = new_database("wh")
    ensure_schema(s3_url)
    started = time.perf_counter()
    load_days(s3_url, f"s3://{s3_bucket}/exports/landing/")
    print(f"golden landing from S3: {time.perf_counter() - started:.1f}s")
    assert snapshot(s3_url) == snapshot(golden_loaded)
