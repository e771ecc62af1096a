"""Listing and opening the files of one landing partition, in a local folder or under `s3://bucket/prefix`.

S3 uses boto3's standard configuration (AWS_ENDPOINT_URL, credentials, region, profiles)."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO

from ..entities import Entity

# S3 objects up to this size are buffered in memory; larger ones spill to a temporary file.
_SPOOL_BYTES = 64 * 1024 * 1024
# Variables that change which S3 client boto3 builds; a client is reused while they stay the same.
_AWS_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
)
_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()


@dataclass(frozen=True)
class LandingFile:
    name: str  # file name, e.g. deals-part-0000.csv.gz
    relpath: str  # relative to the landing root, e.g. crm/deals/dt=2025-01-07/deals-part-0000.csv.gz
    open: Callable[[], IO[bytes]]  # a binary stream of the file's bytes (as stored, possibly gzipped)


def partition_relpath(entity: Entity, day: date) -> str:
    return f"{entity.path}/dt={day.isoformat()}"


def list_partition(landing_uri: str, entity: Entity, day: date) -> list[LandingFile]:
    """Every file directly inside the partition folder, in file-name order ([] if the folder is missing)."""
    rel = partition_relpath(entity, day)
    if landing_uri.startswith("s3://"):
        files = _list_s3(landing_uri, rel)
    else:
        files = _list_local(Path(landing_uri.removeprefix("file://")).expanduser(), rel)
    return sorted(files, key=lambda f: f.name)


def _list_local(root: Path, rel: str) -> list[LandingFile]:
    folder = root / rel
    if not folder.is_dir():
        return []
    return [
        LandingFile(p.name, f"{rel}/{p.name}", lambda p=p: p.open("rb"))
        for p in folder.iterdir()
        if p.is_file()
    ]


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix/` -> ("bucket", "some/prefix") (prefix without slashes at either end)."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise ValueError(f"invalid S3 URI {uri!r}: expected s3://bucket[/prefix]")
    return bucket, prefix.strip("/")


def s3_client():
    """A boto3 S3 client from the standard configuration, reused across partitions (clients are thread-safe)."""
    import boto3

    config = tuple(os.environ.get(v) for v in _AWS_VARIABLES)
    with _clients_lock:
        if config not in _clients:
            _clients[config] = boto3.session.Session().client("s3")
        return _clients[config]


def _list_s3(uri: str, rel: str) -> list[LandingFile]:
    bucket, prefix = split_s3_uri(uri)
    folder = f"{prefix}/{rel}/" if prefix else f"{rel}/"
    s3 = s3_client()

    def opener(key: str) -> Callable[[], IO[bytes]]:
        def open_object() -> IO[bytes]:
            buf = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)
            body = s3.get_object(Bucket=bucket, Key=key)["Body"]
            shutil.copyfileobj(body, buf)
            buf.seek(0)
            return buf

        return open_object

    files = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder, Delimiter="/"):
        for obj in page.get("Contents", []):
            name = obj["Key"][len(folder) :]
            if name:  # skip a zero-byte "folder marker" object
                files.append(LandingFile(name, f"{rel}/{name}", opener(obj["Key"])))
    return files
