"""Shared fixtures: a real PostgreSQL (embedded pgserver by default, or REFERRAL_TEST_SERVER=<url>), a fresh
database per test, and a real HTTP S3 endpoint (moto's threaded server) on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from referral_pipeline.warehouse import ensure_schema

GOLDEN_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "golden"


@pytest.fixture(scope="session", autouse=True)
def _private_settings() -> Iterator[None]:
    """Every test session gets its own data folder (dbt artifacts, logs, Dagster home) and an IP-hash key of
    its own, as a deployment on an external warehouse must have; nothing is written to the working directory."""
    folder = Path(tempfile.mkdtemp(prefix="referral-test-data-"))
    saved = {k: os.environ.get(k) for k in ("REFERRAL_DATA_DIR", "REFERRAL_IP_HASH_KEY")}
    os.environ["REFERRAL_DATA_DIR"] = str(folder)
    os.environ.setdefault("REFERRAL_IP_HASH_KEY", "test-session-ip-hash-key")
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    shutil.rmtree(folder, ignore_errors=True)


def _golden_dir() -> Path:
    env = os.environ.get("REFERRAL_GOLDEN_DIR")
    return Path(env) if env else GOLDEN_DIR


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    d = _golden_dir()
    if not (d / "landing").is_dir():
        pytest.fail(f"golden example not found at {d}; set REFERRAL_GOLDEN_DIR to the shared/golden folder")
    return d


@pytest.fixture(scope="session")
def golden_nightly(golden_dir: Path, new_database, tmp_path_factory) -> dict:
    """The golden example's nightly job, run once per session through the real Dagster job as its two backfill
    runs, recorded in one Dagster instance. Tests read it (and may add control rows); none republishes."""
    from dagster import DagsterInstance

    from orchestration.run import run_nightly

    from golden import RANGES, pipeline_env

    url = new_database("golden")
    exports = tmp_path_factory.mktemp("golden-exports")
    instance = DagsterInstance.ephemeral()
    with pipeline_env(url, golden_dir / "landing", exports, golden_dir / "program_rules.yml") as env:
        run_ids = [run_nightly(s, e, log_level="WARNING", instance=instance).run_id for s, e in RANGES]
    return {
        "url": url,
        # the warehouse right after the runs, before any test adds control rows: copy it with
        # new_database(prefix, copy_of=golden_nightly["pristine_url"])
        "pristine_url": new_database("golden_pristine", copy_of=url),
        "exports": exports,
        "golden": golden_dir,
        "env": env,
        "instance": instance,
        "run_ids": run_ids,
    }


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of a server on which tests may create databases. REFERRAL_TEST_SERVER: 'embedded' (default)
    starts a private pgserver for the session; any postgresql:// URL uses that server instead."""
    target = os.environ.get("REFERRAL_TEST_SERVER", "embedded")
    if target != "embedded":
        yield target
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        # Its own temporary folder, not pytest's tmp_path: pytest prunes old tmp_path folders of concurrent
        # sessions, which would delete a running server's data under it.
        folder = Path(tempfile.mkdtemp(prefix="referral-test-pg-"))
        server = pgserver.get_server(folder / "data", cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def new_database(pg_server_url: str) -> Iterator[Callable[[str], str]]:
    """Factory: create an empty database with a unique name and return its URL (dropped at session end)."""
    created: list[str] = []

    def make(prefix: str = "t", copy_of: str | None = None) -> str:
        """An empty database, or with `copy_of` (a URL) a copy of that database as it is now."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}".lower()
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            if copy_of is None:
                conn.execute(f'create database "{name}"')
            else:
                source = conninfo_to_dict(copy_of)["dbname"]
                # a database is copied as a template, which no other session may be connected to
                conn.execute(
                    "select pg_terminate_backend(pid) from pg_stat_activity "
                    "where datname = %s and pid <> pg_backend_pid()",
                    [source],
                )
                conn.execute(f'create database "{name}" template "{source}"')
        created.append(name)
        params = conninfo_to_dict(pg_server_url)
        params["dbname"] = name
        return _as_url(params)

    yield make
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        for name in created:
            conn.execute(f'drop database if exists "{name}" with (force)')


def _as_url(params: dict) -> str:
    host = params.get("host") or "127.0.0.1"
    user = params.get("user") or "postgres"
    pw = f":{params['password']}" if params.get("password") else ""
    if str(host).startswith("/"):
        return f"postgresql://{user}{pw}@/{params['dbname']}?host={host}"
    port = params.get("port") or 5432
    return f"postgresql://{user}{pw}@{host}:{port}/{params['dbname']}"


@pytest.fixture
def warehouse_url(new_database: Callable[[str], str]) -> str:
    """A fresh database with the pipeline's schemas created."""
    url = new_database("wh")
    ensure_schema(url)
    return url


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 HTTP endpoint (moto server) on 127.0.0.1; AWS_* variables point boto3 at it."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {
        k: os.environ.get(k)
        for k in (
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
        )
    }
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
    )
    yield endpoint
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A new, empty bucket on the moto server; returns its name."""
    import boto3

    name = f"b-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


__all__ = ["make_conninfo"]
