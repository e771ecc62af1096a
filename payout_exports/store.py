"""Where batches are published: a local folder or `s3://bucket/prefix`. Writes are create-only, so nothing
published is ever overwritten: an existing object with identical bytes counts as done, different bytes are an
error."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Protocol


class PublishConflict(RuntimeError):
    """An object already exists at the target with different bytes."""


class Store(Protocol):
    uri: str

    def read(self, name: str) -> bytes | None:
        """The bytes of an object (name relative to the root), or None when it does not exist."""

    def create(self, name: str, data: bytes) -> bool:
        """Create an object unless it exists: True when written, False when identical bytes were already there;
        raises PublishConflict when different bytes are there."""


def _conflict(where: str) -> PublishConflict:
    return PublishConflict(
        f"{where} already exists with different content; a published file is never overwritten"
    )


def _create_temp(folder: Path, name: str) -> tuple[int, Path]:
    """A new, empty temporary file next to `name`, created like `open(..., "x")` creates a file: mode 0666 less
    the process umask (typically 0644), as the kernel applies it (default ACLs included)."""
    while True:
        tmp = folder / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666
            ), tmp
        except FileExistsError:
            continue


class LocalStore:
    """A local folder. A file is written under a temporary name in its folder, then linked to its final name,
    so a published file is never seen partial; files and folders get the modes a plain `open()` and `mkdir`
    give them under the process umask."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.uri = str(self.root)

    def read(self, name: str) -> bytes | None:
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            return None

    def create(self, name: str, data: bytes) -> bool:
        target = self.root / name
        if (existing := self.read(name)) is not None:
            if existing == data:
                return False
            raise _conflict(str(target))
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temp(target.parent, target.name)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, target)  # atomic, and never replaces an existing file
            except FileExistsError:
                if target.read_bytes() != data:
                    raise _conflict(str(target)) from None
                return False
        finally:
            os.unlink(tmp)
        return True


class S3Store:
    def __init__(self, uri: str):
        import boto3

        rest = uri.removeprefix("s3://")
        self.bucket, _, prefix = rest.partition("/")
        if not self.bucket:
            raise ValueError(f"invalid S3 URI {uri!r}; expected s3://bucket/prefix")
        self.prefix = prefix.strip("/")
        self.uri = uri.rstrip("/")
        self.client = boto3.client("s3")  # standard configuration, AWS_ENDPOINT_URL included

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def read(self, name: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key(name))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise

    def create(self, name: str, data: bytes) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=data, IfNoneMatch="*")
            return True
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = exc.response.get("Error", {}).get("Code")
            if status not in (409, 412) and code not in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise
        if self.read(name) != data:
            raise _conflict(f"{self.uri}/{name}")
        return False


def open_store(export_uri: str | Store) -> Store:
    if not isinstance(export_uri, str):
        return export_uri
    if export_uri.startswith("s3://"):
        return S3Store(export_uri)
    return LocalStore(export_uri.removeprefix("file://"))
