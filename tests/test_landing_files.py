"""Landing files in detail: CSV quoting and line numbers, gzip, several files, extra columns, JSONL values,
ip hashing, and files that fail their partition (SPEC section 4)."""

from __future__ import annotations

import gzip
import hashlib
import hmac
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from referral_pipeline.entities import entity
from referral_pipeline.landing import LandingError, load_partition

KEY = "files-test-key"
DAY = date(2025, 1, 7)
DEALS = entity("crm/deals")
CLICKS = entity("links/clicks")
DEALS_HEADER = "deal_id,deal_type,stage,amount,currency,created_at,is_won,updated_at,deal_name"


def deal(deal_id: str, amount: str = "100.00", name: str = "n") -> str:
    return f"{deal_id},new_business,appointment,{amount},usd,2025-01-07T10:00:00Z,false,2025-01-07T10:00:00Z,{name}"


def write(landing: Path, e, day: date, name: str, text: str | bytes, gz: bool = False) -> Path:
    folder = landing / e.path / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    data = text.encode() if isinstance(text, str) else text
    path = folder / name
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def load(url: str, landing: Path, e=DEALS, day: date = DAY) -> tuple:
    logs: list[str] = []
    result = load_partition(url, e, day, str(landing), ip_hash_key=KEY, log=logs.append)
    return result, logs


def rows(url: str, query: str, *params) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def rejected(url: str) -> list[tuple]:
    return rows(
        url, "select _source_file, _line_number, raw_line, reason from raw.rejected_rows order by 1, 2"
    )


def test_multiline_quoted_field_line_numbers(warehouse_url, tmp_path):
    text = "\r\n".join(
        [
            DEALS_HEADER,
            deal("D-1", name='"two\r\nlines"'),  # lines 2-3
            deal("D-2", amount="-1", name='"three\nphysical\nlines"'),  # lines 4-6, rejected
            "",  # line 7: blank, skipped
            deal("D-3", name='"say ""hi"""'),  # line 8
            "D-4,too,few",  # line 9: wrong field count
            "  ",  # line 10: whitespace only, skipped
            deal("D-5", name='"bad"quote'),  # line 11: malformed quoting
            deal("D-6"),  # line 12
        ]
    )
    write(tmp_path, DEALS, DAY, "d.csv", text)
    result, _ = load(warehouse_url, tmp_path)
    assert (result.rows_loaded, result.rows_rejected) == (3, 3)
    assert rows(warehouse_url, "select deal_id, deal_name, _line_number from raw.crm__deals order by 1") == [
        ("D-1", "two\r\nlines", 2),
        ("D-3", 'say "hi"', 8),
        ("D-6", "n", 12),
    ]
    f = "crm/deals/dt=2025-01-07/d.csv"
    assert rejected(warehouse_url) == [
        (f, 4, deal("D-2", amount="-1", name='"three\nphysical\nlines"'), "amount: must be >= 0, got -1"),
        (f, 9, "D-4,too,few", "expected 9 fields as in the header, got 3"),
        (f, 11, deal("D-5", name='"bad"quote'), "malformed CSV record: ',' expected after '\"'"),
    ]


def test_gzip_several_files_in_name_order_and_extra_columns(warehouse_url, tmp_path):
    # Written in reverse order; columns shuffled, upper-cased and with unknown extras.
    write(tmp_path, DEALS, DAY, "deals-part-0001.csv", f"{DEALS_HEADER},exported_by\n{deal('D-2')},x\n")
    shuffled = (
        "Updated_At,exported_by,deal_name,is_won,created_at,currency,amount,stage,deal_type,deal_id,other"
    )
    write(
        tmp_path,
        DEALS,
        DAY,
        "deals-part-0000.csv.gz",
        f"{shuffled}\n2025-01-07T10:00:00+01:00,me,A,TRUE,2025-01-07,eur,5,won,Renewal,D-1,?\n",
        gz=True,
    )
    write(tmp_path, DEALS, DAY, "README.txt", "not data")
    write(tmp_path, DEALS, DAY, "deals.jsonl", "{}")
    result, logs = load(warehouse_url, tmp_path)
    assert result.files == [
        "crm/deals/dt=2025-01-07/deals-part-0000.csv.gz",
        "crm/deals/dt=2025-01-07/deals-part-0001.csv",
    ]
    assert (result.entity, result.partition_date, result.rows_loaded, result.rows_rejected) == (
        "crm/deals",
        DAY,
        2,
        0,
    )
    assert rows(
        warehouse_url,
        "select deal_id, deal_type, amount, currency, is_won, is_deleted, updated_at, _source_file, _line_number,"
        " _load_batch_id from raw.crm__deals order by _source_file",
    ) == [
        ("D-1", "renewal", Decimal("5"), "EUR", True, False, datetime(2025, 1, 7, 9, tzinfo=UTC), result.files[0], 2, result.load_batch_id),
        ("D-2", "new_business", Decimal("100.00"), "USD", False, False, datetime(2025, 1, 7, 10, tzinfo=UTC), result.files[1], 2, result.load_batch_id),
    ]  # fmt: skip
    assert sum("ignoring unknown column(s) exported_by, other" in m for m in logs) == 1
    assert sum("deals-part-0001.csv: ignoring unknown column(s) exported_by" in m for m in logs) == 1
    assert sum("ignored" in m and ("README.txt" in m or "deals.jsonl" in m) for m in logs) == 2
    assert rows(warehouse_url, "select files, rows_loaded, rows_rejected from raw.load_batches") == [
        (result.files, 2, 0)
    ]


def test_utf8_bom_and_non_ascii_text(warehouse_url, tmp_path):
    write(
        tmp_path,
        DEALS,
        DAY,
        "d.csv",
        "\ufeff" + DEALS_HEADER + "\n" + deal("D-1", name="Müller & Søn") + "\n",
    )
    load(warehouse_url, tmp_path)
    assert rows(warehouse_url, "select deal_name from raw.crm__deals") == [("Müller & Søn",)]


def test_jsonl_values_blank_lines_and_bad_lines(warehouse_url, tmp_path):
    lines = [
        '{"click_id": "c1", "link_code": "L1", "clicked_at": "2025-01-07T10:00:00Z", "visitor_id": 42,'
        ' "ip_address": "10.1.2.3", "country": null, "utm": {"a": 1}}',
        "",
        '{"click_id": "c2", "link_code": "L1", "clicked_at": "2025-01-07T10:00:00Z", "visitor_id": null,'
        ' "ip_address": "10.9.9.9"}',
        '["not", "an", "object"]',
        '{"click_id": "c3", "link_code": ',
        '{"click_id": "c4", "link_code": {"x": 1}, "clicked_at": "2025-01-07", "visitor_id": true}',
        "   ",
        '{"click_id": "c5", "link_code": "L2", "clicked_at": "2025-01-07T11:00:00-01:00", "visitor_id": "v5"}',
    ]
    write(tmp_path, CLICKS, DAY, "clicks-part-0000.jsonl.gz", "\n".join(lines) + "\n", gz=True)
    result, logs = load(warehouse_url, tmp_path, CLICKS)
    assert (result.rows_loaded, result.rows_rejected) == (2, 4)
    ip_hash = hmac.new(KEY.encode(), b"10.1.2.3", hashlib.sha256).hexdigest()
    assert rows(
        warehouse_url, "select click_id, visitor_id, country, ip_hash, clicked_at, _line_number from raw.links__clicks order by 1"
    ) == [
        ("c1", "42", None, ip_hash, datetime(2025, 1, 7, 10, tzinfo=UTC), 1),
        ("c5", "v5", None, None, datetime(2025, 1, 7, 12, tzinfo=UTC), 8),
    ]  # fmt: skip
    got = rejected(warehouse_url)
    assert [(line, reason.split(":")[0]) for _, line, _, reason in got] == [
        (3, "visitor_id"),
        (4, "not a JSON object"),
        (5, "not valid JSON"),
        (6, "link_code"),
    ]
    assert any("ignoring unknown field(s) utm" in m for m in logs)
    # The raw ip is stored nowhere, not even in a rejected row's raw line.
    for table in ("raw.links__clicks", "raw.rejected_rows"):
        assert rows(warehouse_url, f"select count(*) from {table} t where t::text like '%%10.1.2.3%%'") == [
            (0,)
        ]
        assert rows(warehouse_url, f"select count(*) from {table} t where t::text like '%%10.9.9.9%%'") == [
            (0,)
        ]
    assert "hmac-sha256:" in got[0][2]


def test_ip_in_an_unparseable_jsonl_line_is_hashed(warehouse_url, tmp_path):
    write(tmp_path, CLICKS, DAY, "c.jsonl", '{"click_id": "c1", "ip_address": "192.168.7.7", oops}\n')
    load(warehouse_url, tmp_path, CLICKS)
    [(_, line, raw, reason)] = rejected(warehouse_url)
    assert line == 1 and reason.startswith("not valid JSON") and "192.168.7.7" not in raw


def test_missing_partition_replaces_a_previous_load_with_nothing(warehouse_url, tmp_path):
    path = write(tmp_path, DEALS, DAY, "d.csv", f"{DEALS_HEADER}\n{deal('D-1')}\n{deal('D-2', amount='x')}\n")
    load(warehouse_url, tmp_path)
    assert rows(warehouse_url, "select count(*) from raw.crm__deals") == [(1,)]
    path.unlink()
    path.parent.rmdir()
    result, logs = load(warehouse_url, tmp_path)
    assert (result.files, result.rows_loaded, result.rows_rejected) == ([], 0, 0)
    assert rows(warehouse_url, "select count(*) from raw.crm__deals") == [(0,)]
    assert rejected(warehouse_url) == []
    assert rows(warehouse_url, "select files, rows_loaded from raw.load_batches") == [([], 0)]
    assert any("no data files" in m for m in logs)


GOOD = f"{DEALS_HEADER}\n{deal('D-1')}\n{deal('D-2')}\n"
BAD_FILES = {
    "missing required column": (
        "deals-part-0001.csv",
        DEALS_HEADER.replace(",currency", "") + "\nD-9,new_business,s,1,2025-01-07,false,2025-01-07,n\n",
        "header lacks required column(s) currency",
    ),
    "corrupt gzip": ("deals-part-0001.csv.gz", b"\x1f\x8b\x08\x00garbage-not-deflate", "cannot be decompressed as gzip"),
    "truncated gzip": ("deals-part-0001.csv.gz", gzip.compress(GOOD.encode() * 50)[:-40], "cannot be decompressed as gzip"),
    "not gzip at all": ("deals-part-0001.csv.gz", GOOD.encode(), "cannot be decompressed as gzip"),
    "invalid UTF-8": ("deals-part-0001.csv", f"{DEALS_HEADER}\n{deal('D-9')}\n".encode() + b"D-10,\xff\xfe\n", "line 3 is not valid UTF-8"),
    "empty CSV": ("deals-part-0001.csv", b"", "needs a header row"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_file_fails_only_its_partition_and_keeps_the_previous_load(warehouse_url, tmp_path, case):
    name, content, problem = BAD_FILES[case]
    other_day = date(2025, 1, 8)
    write(tmp_path, DEALS, DAY, "deals-part-0000.csv", GOOD)
    first, _ = load(warehouse_url, tmp_path)
    before = rows(warehouse_url, "select * from raw.crm__deals order by deal_id")

    write(tmp_path, DEALS, DAY, name, content)  # a second, bad file in the same partition
    write(
        tmp_path,
        DEALS,
        other_day,
        "deals-part-0000.csv",
        f"{DEALS_HEADER}\n{deal('D-3', amount='')}\n{deal('D-4')}\n",
    )
    with pytest.raises(LandingError) as e:
        load(warehouse_url, tmp_path)
    message = str(e.value)
    assert f"crm/deals/dt=2025-01-07/{name}" in message and problem in message, message
    assert "previous load is kept" in message and "rerun" in message
    # Nothing of the failed load: same rows (same batch), and its good first file was not loaded either.
    assert rows(warehouse_url, "select * from raw.crm__deals order by deal_id") == before
    assert rows(warehouse_url, "select load_batch_id from raw.load_batches") == [(first.load_batch_id,)]

    other, _ = load(warehouse_url, tmp_path, day=other_day)  # other partitions still load
    assert (other.rows_loaded, other.rows_rejected) == (1, 1)
    assert rows(
        warehouse_url, "select _partition_date, count(*) from raw.crm__deals group by 1 order by 1"
    ) == [
        (DAY, 2),
        (other_day, 1),
    ]


def test_s3_partition_with_several_files_and_a_missing_partition(warehouse_url, s3_bucket, tmp_path):
    import boto3

    s3 = boto3.client("s3")
    folder = "landing/crm/deals/dt=2025-01-07"
    s3.put_object(Bucket=s3_bucket, Key=f"{folder}/b.csv", Body=f"{DEALS_HEADER}\n{deal('D-2')}\n".encode())
    s3.put_object(
        Bucket=s3_bucket,
        Key=f"{folder}/a.csv.gz",
        Body=gzip.compress(f"{DEALS_HEADER}\n{deal('D-1')}\n".encode()),
    )
    s3.put_object(
        Bucket=s3_bucket, Key=f"{folder}/sub/c.csv", Body=f"{DEALS_HEADER}\n{deal('D-3')}\n".encode()
    )
    s3.put_object(
        Bucket=s3_bucket, Key="landing/crm/deals/dt=2025-01-070/x.csv", Body=GOOD.encode()
    )  # other folder
    uri = f"s3://{s3_bucket}/landing"
    result = load_partition(warehouse_url, DEALS, DAY, uri, ip_hash_key=KEY, log=lambda m: None)
    assert result.files == ["crm/deals/dt=2025-01-07/a.csv.gz", "crm/deals/dt=2025-01-07/b.csv"]
    assert rows(warehouse_url, "select deal_id, _source_file from raw.crm__deals order by 1") == [
        ("D-1", result.files[0]),
        ("D-2", result.files[1]),
    ]
    empty = load_partition(warehouse_url, DEALS, date(2025, 1, 9), uri, ip_hash_key=KEY, log=lambda m: None)
    assert (empty.files, empty.rows_loaded) == ([], 0)
    s3.put_object(Bucket=s3_bucket, Key=f"{folder}/c.csv", Body=b"deal_id\nD-5\n")
    with pytest.raises(LandingError, match=r"crm/deals/dt=2025-01-07/c\.csv: header lacks required column"):
        load_partition(warehouse_url, DEALS, DAY, uri, ip_hash_key=KEY, log=lambda m: None)
