"""The raw tables' indexes: a BRIN index on _partition_date, no btree on it and none on clicks' click_id; a
warehouse created with the older btree indexes is upgraded in place by the same setup, idempotently."""

from __future__ import annotations

import psycopg

from referral_pipeline.entities import ENTITIES
from referral_pipeline.warehouse import ensure_schema


def raw_indexes(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return dict(
            conn.execute(
                "select i.relname, am.amname from pg_index x"
                " join pg_class i on i.oid = x.indexrelid join pg_class t on t.oid = x.indrelid"
                " join pg_namespace n on n.oid = t.relnamespace join pg_am am on am.oid = i.relam"
                " where n.nspname = 'raw' and t.relname <> all(%s)",
                (["rejected_rows", "load_batches"],),
            ).fetchall()
        )


def expected() -> dict[str, str]:
    return {f"{e.table}__partition_brin": "brin" for e in ENTITIES}


def test_new_warehouse_has_brin_partition_indexes_only(warehouse_url: str):
    assert raw_indexes(warehouse_url) == expected()


def test_older_warehouse_is_upgraded_in_place(new_database):
    url = new_database("wh")
    ensure_schema(url)
    with psycopg.connect(url) as conn:  # the indexes as warehouses were created before
        for e in ENTITIES:
            conn.execute(f"drop index raw.{e.table}__partition_brin")
            conn.execute(f"create index {e.table}__partition on raw.{e.table} (_partition_date)")
        conn.execute("create index links__clicks__click_id on raw.links__clicks (click_id)")
        conn.execute(
            "insert into raw.links__clicks (click_id, link_code, clicked_at, visitor_id, _partition_date,"
            " _source_file, _line_number, _load_batch_id, _loaded_at)"
            " values ('c-1', 'L', now(), 'v', '2025-01-07', 'f', 1, 'b', now())"
        )
    assert "links__clicks__click_id" in raw_indexes(url)
    ensure_schema(url)
    assert raw_indexes(url) == expected()
    ensure_schema(url)  # idempotent
    assert raw_indexes(url) == expected()
    with psycopg.connect(url) as conn:
        assert conn.execute("select click_id from raw.links__clicks").fetchall() == [("c-1",)]
