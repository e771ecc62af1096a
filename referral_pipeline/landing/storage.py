"""Listing and opening the files of one landing partition, in a local folder or under `s3://bucket/prefix`.

S3 uses boto3's standard configuration (AWS_ENDPOINT_URL, credentials, region, profiles).

The landing root itself must exist and be listable (`check_landing_root`): a missing partition folder under
it means "no rows that day", but a missing root is a wrong setting, never an empty landing zone."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO, NoReturn

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
    "AWS_MAX_ATTEMPTS",
    "AWS_RETRY_MODE",
)
SETTING = "REFERRAL_LANDING_URI"
_DENIED_CODES = {"AccessDenied", "403", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch"}
_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()


class LandingError(Exception):
    """A landing partition cannot be loaded; the message names the file, what is wrong and what to do."""


@dataclass(frozen=True)
class LandingFile:
    name: str  # file name, e.g. deals-part-0000.csv.gz
    relpath: str  # relative to the landing root, e.g. crm/deals/dt=2025-01-07/deals-part-0000.csv.gz
    open: Callable[[], IO[bytes]]  # a binary stream of the file's bytes (as stored, possibly gzipped)


def partition_relpath(entity: Entity, day: date) -> str:
    return f"{entity.path}/dt={day.isoformat()}"


def check_landing_root(landing_uri: str) -> None:
    """Raise LandingError unless the landing root exists and can be listed.

    A local root (a path, `file://` path or `~/...`) must be a readable folder (one stat). An S3 root
    `s3://bucket/prefix` needs the bucket to exist and be listable, and at least one object whose key starts
    with `prefix/` (one ListObjectsV2 call with MaxKeys=1); `s3://bucket` alone needs only the bucket."""
    if not landing_uri.strip():
        raise LandingError(
            f"landing root is not set ({SETTING} is empty): set it to a folder or s3://bucket/prefix;"
            " nothing was loaded"
        )
    if landing_uri.startswith("s3://"):
        _check_s3_root(landing_uri)
    else:
        _check_local_root(landing_uri)


def _root_error(
    landing_uri: str, problem: str, detail: str = "", what_to_do: str = "check the setting"
) -> NoReturn:
    """E.g. `landing root /a/typo does not exist (REFERRAL_LANDING_URI): check the setting; nothing was loaded`."""
    detail = f"{detail}; " if detail else ""
    raise LandingError(
        f"landing root {landing_uri} {problem} ({SETTING}): {detail}{what_to_do}; nothing was loaded"
    )


def _local_root(landing_uri: str) -> Path:
    return Path(landing_uri.removeprefix("file://")).expanduser()


def _check_local_root(landing_uri: str) -> None:
    root = _local_root(landing_uri)
    resolved = "" if str(root) == landing_uri else f"resolves to {root}"
    try:
        st = root.stat()
    except (FileNotFoundError, NotADirectoryError):
        _root_error(landing_uri, "does not exist", resolved)
    except OSError as e:
        _root_error(landing_uri, "cannot be read", ", ".join(filter(None, [resolved, e.strerror or str(e)])))
    if not stat.S_ISDIR(st.st_mode):
        _root_error(landing_uri, "is not a folder", resolved)
    if not os.access(root, os.R_OK | os.X_OK):
        what = "check the setting and the folder's permissions"
        _root_error(
            landing_uri, "cannot be listed", ", ".join(filter(None, [resolved, "permission denied"])), what
        )


def _check_s3_root(landing_uri: str) -> None:
    try:
        bucket, prefix = split_s3_uri(landing_uri)
    except ValueError:
        _root_error(landing_uri, "is not a valid S3 URI", "expected s3://bucket or s3://bucket/prefix")
    try:
        found = s3_client().list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/" if prefix else "", MaxKeys=1)
    except Exception as e:
        if not type(e).__module__.startswith(("botocore", "boto3")):
            raise
        code = (getattr(e, "response", None) or {}).get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            _root_error(landing_uri, "does not exist", f"there is no bucket {bucket}")
        if code in _DENIED_CODES:
            what = "check the setting and the S3 credentials (AWS_* variables or profile)"
            _root_error(landing_uri, "cannot be listed", f"access denied ({code})", what)
        what = "check the setting and the S3 endpoint and credentials (AWS_* variables or profile)"
        _root_error(landing_uri, "cannot be listed", _one_line(e), what)
    if prefix and not found.get("KeyCount", len(found.get("Contents", []))):
        _root_error(landing_uri, "does not exist", f"no object under s3://{bucket}/{prefix}/")


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def list_partition(landing_uri: str, entity: Entity, day: date) -> list[LandingFile]:
    """Every file directly inside the partition folder, in file-name order ([] if the folder is missing)."""
    rel = partition_relpath(entity, day)
    if landing_uri.startswith("s3://"):
        files = _list_s3(landing_uri, rel)
    else:
        files = _list_local(_local_root(landing_uri), rel)
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
