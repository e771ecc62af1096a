"""The warehouse: an embedded PostgreSQL (pgserver) in the local data folder, or REFERRAL_WAREHOUSE_URL."""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .config import Settings
from .ddl import CONTROL_SESSION_USER_UPGRADE, SCHEMAS, all_ddl

log = logging.getLogger(__name__)

EMBEDDED_DBNAME = "referral"
# Advisory lock keys (arbitrary constants, one per kind of exclusive work).
SCHEMA_LOCK = 727_001
DBT_LOCK = 727_002
PAYOUT_LOCK = 727_003


def embedded_server_dir(settings: Settings) -> Path:
    return settings.data_dir / "warehouse"


def start_embedded(settings: Settings) -> str:
    """Start (or reuse) the embedded PostgreSQL server and return the URL of the project's database.

    The server keeps running after this process exits so that the CLI, Dagster and psql share it;
    `referral-pipeline warehouse stop` stops it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(embedded_server_dir(settings), cleanup_mode=None)
    base = server.get_uri()
    with psycopg.connect(base, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (EMBEDDED_DBNAME,)).fetchone()
        if not exists:
            conn.execute(f"create database {EMBEDDED_DBNAME}")
    params = conninfo_to_dict(base)
    params["dbname"] = EMBEDDED_DBNAME
    host = params.pop("host")
    user = params.get("user") or "postgres"
    return f"postgresql://{user}@/{EMBEDDED_DBNAME}?host={host}"


def reset_embedded_database(settings: Settings) -> str:
    """Drop and recreate the embedded server's project database (the demo's fresh start). Returns its URL."""
    url = start_embedded(settings)
    admin = conninfo_to_dict(url)
    admin["dbname"] = "postgres"
    with psycopg.connect(make_conninfo(**admin), autocommit=True) as conn:
        conn.execute(f"drop database if exists {EMBEDDED_DBNAME} with (force)")
        conn.execute(f"create database {EMBEDDED_DBNAME}")
    return url


def embedded_database_has_tables(settings: Settings) -> bool:
    """Whether the embedded project database exists and holds any table of the pipeline's schemas."""
    if not (embedded_server_dir(settings) / "PG_VERSION").exists():
        return False
    with psycopg.connect(start_embedded(settings)) as conn:
        return bool(
            conn.execute(
                "select 1 from information_schema.tables where table_schema in "
                "('raw', 'rules', 'controls', 'payouts', 'staging', 'intermediate', 'marts') limit 1"
            ).fetchone()
        )


def stop_embedded(settings: Settings) -> str:
    """Stop the embedded server if it runs; returns what happened."""
    data = embedded_server_dir(settings)
    if not (data / "postmaster.pid").exists():
        return f"the embedded warehouse in {data} is not running"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(data, cleanup_mode="stop")
    server.cleanup()
    return f"stopped the embedded warehouse in {data}"


def resolve_url(settings: Settings) -> str:
    """The warehouse URL: REFERRAL_WAREHOUSE_URL when set, else the embedded server's (started on demand)."""
    return settings.warehouse_url or start_embedded(settings)


def connection_params(url: str) -> dict[str, str]:
    """host/port/user/password/dbname of a URL, for dbt's profile (passed as environment variables)."""
    p = conninfo_to_dict(url)
    return {
        "host": str(p.get("host") or "127.0.0.1"),
        "port": str(p.get("port") or "5432"),
        "user": str(p.get("user") or "postgres"),
        "password": str(p.get("password") or ""),
        "dbname": str(p.get("dbname") or "postgres"),
    }


def psql_command(url: str) -> str:
    p = connection_params(url)
    return f"psql '{make_conninfo(host=p['host'], port=p['port'], user=p['user'], dbname=p['dbname'])}'"


def connect(url: str, **kwargs) -> psycopg.Connection:
    return psycopg.connect(url, **kwargs)


@contextlib.contextmanager
def advisory_lock(url: str, key: int) -> Iterator[None]:
    """Hold a session-level advisory lock for the duration of the block (waits for other holders)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", (key,))
        try:
            yield
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (key,))


class SchemaNotReady(psycopg.errors.InsufficientPrivilege):
    """The warehouse lacks tables or columns this version needs and the connected role may not create them."""


def _expected_tables() -> list[str]:
    """schema.table of every table the Python-owned DDL creates (the pipeline's tables and the ledger)."""
    from payout_exports.ledger import LEDGER_DDL

    return re.findall(r"create table if not exists (\w+\.\w+)", all_ddl() + LEDGER_DDL)


def missing_schema_objects(conn: psycopg.Connection) -> list[str]:
    """What the warehouse lacks of the Python-owned schema: tables, and the session_user_name column of the control
    tables (read from the catalogs, so any role can ask)."""
    present = {
        f"{schema}.{table}"
        for schema, table in conn.execute(
            "select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = any(%s) and c.relkind in ('r', 'p')",
            (list(SCHEMAS),),
        )
    }
    missing = [t for t in _expected_tables() if t not in present]
    missing += [
        f"controls.{table}.session_user_name"
        for (table,) in conn.execute(
            "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = 'controls' and c.relkind in ('r', 'p') and not exists ("
            "  select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'session_user_name'"
            "  and not a.attisdropped) order by 1"
        )
    ]
    return missing


def ensure_schema(url: str) -> None:
    """Create every schema and Python-owned table and bring older warehouses up to date (idempotent, serialised
    across processes).

    A role that may not create schemas in the database (the least-privilege roles of `warehouse roles`) changes
    nothing: it checks that everything exists and raises SchemaNotReady, naming what is missing, when not."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", (SCHEMA_LOCK,))
        try:
            can_create = conn.execute(
                "select has_database_privilege(current_database(), 'CREATE')"
            ).fetchone()[0]
            if not can_create:
                missing = missing_schema_objects(conn)
                if missing:
                    user = conn.execute("select current_user").fetchone()[0]
                    raise SchemaNotReady(
                        f"the warehouse lacks {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''} and "
                        f"role {user} may not create it: run `referral-pipeline warehouse roles` once as the "
                        "warehouse's owner"
                    )
                return
            with conn.transaction():
                conn.execute(all_ddl())
            from payout_exports import ensure_ledger_schema

            ensure_ledger_schema(conn)
            with conn.transaction():
                conn.execute(CONTROL_SESSION_USER_UPGRADE)
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (SCHEMA_LOCK,))


def prepare(settings: Settings) -> str:
    """Resolve the warehouse URL and make sure its schemas exist. Returns the URL."""
    url = resolve_url(settings)
    ensure_schema(url)
    return url
