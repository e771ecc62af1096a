"""The landing root must exist: a mistyped REFERRAL_LANDING_URI fails the load before anything is replaced,
while a missing partition folder under an existing root still loads zero rows."""

from __future__ import annotations

import socket
from datetime import date
from pathlib import Path

import boto3
import psycopg
import pytest
from test_landing_files import DEALS, DEALS_HEADER, KEY, deal, write
from test_landing_golden import load_days, snapshot

from referral_pipeline.entities import ENTITIES
from referral_pipeline.landing import LandingError, check_landing_root, load_partition, storage
from referral_pipeline.warehouse import ensure_schema

SETTING = "REFERRAL_LANDING_URI"
DAY = date(2025, 1, 7)  # a golden day with rows and rejected rows in most entities


def full_contents(url: str) -> dict[str, list[str]]:
    """Every table of schema raw, every column included (batch ids and load times too), as text."""
    with psycopg.connect(url) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "select table_name from information_schema.tables where table_schema = 'raw' order by 1"
            )
        ]
        return {t: [r[0] for r in conn.execute(f"select t::text from raw.{t} t order by 1")] for t in tables}


@pytest.fixture
def golden_day_loaded(warehouse_url: str, golden_dir: Path) -> tuple[str, dict[str, list[str]]]:
    """A warehouse with the golden day loaded from the local landing folder, and its full contents."""
    load_days(warehouse_url, str(golden_dir / "landing"), days=[DAY])
    before = full_contents(warehouse_url)
    assert {e.table for e in ENTITIES} | {"rejected_rows", "load_batches"} <= set(before)
    assert len(before["load_batches"]) == len(ENTITIES)
    assert before["crm__deals"] and before["rejected_rows"]
    return warehouse_url, before


def assert_fails_and_replaces_nothing(url: str, before: dict, landing_uri: str, problem: str) -> None:
    with pytest.raises(LandingError) as e:
        check_landing_root(landing_uri)
    message = str(e.value)
    assert SETTING in message and landing_uri in message and problem in message, message
    assert "\n" not in message and "nothing was loaded" in message and "SPEC" not in message
    for one_entity in ENTITIES:  # every entity's load fails the same way, before touching the warehouse
        with pytest.raises(LandingError) as e:
            load_partition(url, one_entity, DAY, landing_uri, ip_hash_key=KEY, log=lambda m: None)
        assert str(e.value) == message
    assert full_contents(url) == before


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("make_uri", "problem"),
    [
        (lambda tmp: str(tmp / "a" / "typo"), "does not exist"),
        (lambda tmp: f"file://{tmp}/typo", "does not exist"),
        (lambda tmp: "~/referral-landing-typo-does-not-exist", "does not exist"),
        (lambda tmp: str(write(tmp, DEALS, DAY, "d.csv", "x")), "is not a folder"),
        (lambda tmp: str(write(tmp, DEALS, DAY, "d.csv", "x") / "below"), "does not exist"),
        (lambda tmp: " ", "is not set"),
    ],
    ids=["missing", "file-uri", "home", "a-file", "below-a-file", "empty"],
)
def test_missing_local_root_fails_and_replaces_nothing(golden_day_loaded, tmp_path, make_uri, problem):
    url, before = golden_day_loaded
    assert_fails_and_replaces_nothing(url, before, make_uri(tmp_path), problem)


@pytest.fixture
def s3_golden_day(s3_bucket: str, golden_dir: Path) -> str:
    """The golden day's partitions uploaded under s3://bucket/exports/landing/; returns the bucket."""
    s3 = boto3.client("s3")
    root = golden_dir / "landing"
    for path in sorted(root.glob(f"*/*/dt={DAY.isoformat()}/*")):
        s3.upload_file(str(path), s3_bucket, f"exports/landing/{path.relative_to(root).as_posix()}")
    return s3_bucket


def test_s3_root_that_exists_loads_like_the_local_folder(golden_day_loaded, s3_golden_day, new_database):
    local_url, _ = golden_day_loaded
    for uri in (f"s3://{s3_golden_day}/exports/landing", f"s3://{s3_golden_day}", f"s3://{s3_golden_day}/"):
        check_landing_root(uri)  # the bucket root exists whenever the bucket does
    s3_url = new_database("wh")
    ensure_schema(s3_url)
    load_days(s3_url, f"s3://{s3_golden_day}/exports/landing/", days=[DAY])
    assert snapshot(s3_url) == snapshot(local_url)


@pytest.mark.parametrize(
    ("make_uri", "problem"),
    [
        (lambda bucket: "s3://no-such-bucket-referral-typo/exports/landing", "does not exist"),
        (lambda bucket: "s3://no-such-bucket-referral-typo", "does not exist"),
        (lambda bucket: f"s3://{bucket}/exports/landign", "does not exist"),
        (lambda bucket: f"s3://{bucket}/exports/land", "does not exist"),  # a key prefix is not a folder
        (lambda bucket: f"s3://{bucket}/landing", "does not exist"),
        (lambda bucket: "s3:///exports/landing", "is not a valid S3 URI"),
    ],
    ids=["no-bucket", "no-bucket-no-prefix", "no-prefix", "partial-prefix", "other-prefix", "no-bucket-name"],
)
def test_missing_s3_root_fails_and_replaces_nothing(golden_day_loaded, s3_golden_day, make_uri, problem):
    url, before = golden_day_loaded
    assert_fails_and_replaces_nothing(url, before, make_uri(s3_golden_day), problem)


def test_unreachable_s3_endpoint_fails_and_replaces_nothing(golden_day_loaded, s3_golden_day, monkeypatch):
    url, before = golden_day_loaded
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{unused_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    assert_fails_and_replaces_nothing(
        url, before, f"s3://{s3_golden_day}/exports/landing", "cannot be listed"
    )


def test_s3_access_denied_fails_and_replaces_nothing(golden_day_loaded, s3_endpoint, monkeypatch):
    from botocore.stub import Stubber

    url, before = golden_day_loaded
    client = boto3.client("s3")
    stubber = Stubber(client)
    for _ in range(1 + len(ENTITIES)):
        stubber.add_client_error("list_objects_v2", "AccessDenied", "Access Denied", http_status_code=403)
    stubber.activate()
    monkeypatch.setattr(storage, "s3_client", lambda: client)
    assert_fails_and_replaces_nothing(url, before, "s3://locked-bucket/landing", "access denied")
    stubber.assert_no_pending_responses()


def test_existing_root_with_a_missing_partition_still_loads_zero_rows(
    golden_day_loaded, golden_dir, tmp_path
):
    url, _ = golden_day_loaded
    empty_day = date(2024, 12, 31)  # before the golden data: no partition folder in any entity
    for root in (str(golden_dir / "landing"), str(tmp_path), f"file://{tmp_path}"):
        check_landing_root(root)
        for e in ENTITIES:
            logs: list[str] = []
            result = load_partition(url, e, empty_day, root, ip_hash_key=KEY, log=logs.append)
            assert (result.files, result.rows_loaded, result.rows_rejected) == ([], 0, 0)
            assert any("no data files" in m for m in logs)
    # ...and it still replaces a previous load of that partition with nothing (the mirror of the landing zone)
    write(tmp_path, DEALS, empty_day, "d.csv", f"{DEALS_HEADER}\n{deal('D-1')}\n")
    load_partition(url, DEALS, empty_day, str(tmp_path), ip_hash_key=KEY, log=lambda m: None)
    (tmp_path / DEALS.path / f"dt={empty_day.isoformat()}" / "d.csv").unlink()
    (tmp_path / DEALS.path / f"dt={empty_day.isoformat()}").rmdir()
    result = load_partition(url, DEALS, empty_day, str(tmp_path), ip_hash_key=KEY, log=lambda m: None)
    assert result.rows_loaded == 0
    with psycopg.connect(url) as conn:
        assert conn.execute(
            "select count(*) from raw.crm__deals where _partition_date = %s", (empty_day,)
        ).fetchone() == (0,)
