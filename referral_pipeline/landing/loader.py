"""Loading one landing partition (entity + day) into its raw table (see docs/rules.md, Inputs).

One partition loads in one transaction: the rows, rejected rows and load-batch record that the partition
loaded before are deleted, the new valid rows are copied into `raw.{source}__{entity}` with their lineage,
the rejected rows into `raw.rejected_rows`, and one row is added to `raw.load_batches`. Rows are written with
PostgreSQL COPY in binary format, converted column by column about a MB at a time (`readers.read_batches`)
while the server stores what was sent before (a thread of the loader sends it); rejected rows wait in a temporary file
(spilled to disk past 16 MB) until the valid rows are in, so memory stays flat whatever the file's size.
A transaction-scoped advisory lock per partition serialises concurrent loads of the same partition, so a rerun
never duplicates a row.

Choices where the spec is silent:
- The landing root must exist and be listable (`check_landing_root`), or the load fails before anything is
  replaced: a mistyped REFERRAL_LANDING_URI must never look like an empty landing zone.
- A missing partition folder (or one with no data file) loads zero rows, and that load still replaces what
  the partition loaded before: the raw tables always mirror the landing zone as it was at the last load.
  A load batch with no files is recorded.
- Files not named like the entity's format (`.csv`/`.csv.gz` or `.jsonl`/`.jsonl.gz`) and sub-folders are
  ignored, with a log line for each ignored file.
- Blank lines are skipped; they are neither rows nor rejections (they still count as physical lines).
- A row with several problems is rejected once, with every problem in its reason (joined by `; `).
- CSV header names are trimmed and matched case-insensitively; a header naming a column twice, an empty CSV
  file (no header row) and an unreadable object in S3 fail the partition like a missing required column.
- A UTF-8 byte-order mark at the start of a file is ignored.
- The raw line of a rejected row never holds an IP address in clear: it is replaced by its keyed hash.
- Duplicates and record versions are kept as loaded; dbt staging resolves them.
"""

from __future__ import annotations

import queue
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import IO

import psycopg
from psycopg import sql

from ..entities import Entity
from .columns import SIGNATURE, TRAILER, RowFormat
from .readers import CSV_SUFFIXES, JSONL_SUFFIXES, Batch, FileError, Rejected, accepts, read_batches
from .storage import LandingError, LandingFile, check_landing_root, list_partition, partition_relpath

MAX_LOGGED_REJECTIONS = 20  # per file; the rest are counted
_SPOOL_BYTES = 16 * 1024 * 1024  # rejected rows kept in memory before they spill to a temporary file
_REJECTED_COLUMNS = (
    "entity, _partition_date, _source_file, _line_number, raw_line, reason, _load_batch_id, _loaded_at"
)


@dataclass
class LoadResult:
    entity: str  # e.g. crm/deals
    partition_date: date
    files: list[str]  # loaded files, relative to the landing root
    rows_loaded: int
    rows_rejected: int
    load_batch_id: str


def load_partition(
    url: str,
    entity: Entity,
    day: date,
    landing_uri: str,
    *,
    ip_hash_key: str,
    log: Callable[[str], None] = print,
) -> LoadResult:
    """Load `{landing_uri}/{source}/{entity}/dt={day}/` into the warehouse at `url`, replacing that partition's
    previous load. Raises LandingError (and loads nothing, keeping the previous load) if the landing root
    does not exist or cannot be listed, or if a file cannot be loaded."""
    check_landing_root(landing_uri)
    part = partition_relpath(entity, day)
    started = datetime.now(UTC)
    batch_id = f"{entity.table}:{day.isoformat()}:{uuid.uuid4().hex[:12]}"
    files = _data_files(landing_uri, entity, day, log)
    if not files:
        log(f"{part}: no data files; loading zero rows (replaces any previous load of this partition)")

    loaded, rejected = 0, 0
    with (
        psycopg.connect(url, autocommit=True) as conn,
        conn.transaction(),
        tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool,
    ):
        conn.execute("select pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"landing:{part}",))
        _delete_previous(conn, entity, day)
        with (
            conn.cursor() as cur,
            cur.copy(RowFormat.copy_sql(entity)) as copy,
        ):
            sender = _Sender(copy)
            try:
                sender.write(SIGNATURE)
                for f in files:
                    fmt = RowFormat(entity, day, f.relpath, batch_id, started)
                    file_loaded, file_rejected, first_rejected = 0, 0, []
                    for batch in _read(f, entity, part, fmt, ip_hash_key, log):
                        if batch.data:
                            sender.write(batch.data)
                        file_loaded += batch.loaded
                        file_rejected += len(batch.rejected)
                        first_rejected += batch.rejected[: MAX_LOGGED_REJECTIONS - len(first_rejected)]
                        _spool_rejected(spool, entity, day, f.relpath, batch, batch_id, started)
                    _log_file(f, file_loaded, file_rejected, first_rejected, log)
                    loaded += file_loaded
                    rejected += file_rejected
                sender.write(TRAILER)
            except BaseException:
                sender.close(raise_error=False)
                raise
            sender.close()
        _write_rejected(conn, spool)
        conn.execute(
            "insert into raw.load_batches (load_batch_id, entity, partition_date, files, rows_loaded,"
            " rows_rejected, started_at, finished_at) values (%s, %s, %s, %s, %s, %s, %s, clock_timestamp())",
            (batch_id, entity.path, day, [f.relpath for f in files], loaded, rejected, started),
        )
    log(f"{part}: loaded {loaded} rows, rejected {rejected} (batch {batch_id})")
    return LoadResult(entity.path, day, [f.relpath for f in files], loaded, rejected, batch_id)


class _Sender:
    """Writes a COPY's data from a thread of its own, so that this process converts the next chunk while the
    server stores the ones before (a COPY's write waits whenever the server has not yet read what was sent:
    the socket's buffers hold far less than a chunk). At most `depth` chunks wait to be sent."""

    def __init__(self, copy: psycopg.Copy, depth: int = 4):
        self._copy = copy
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="landing-copy", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while (data := self._queue.get()) is not None:
                self._copy.write(data)
        except BaseException as e:  # raised in the loading thread by the next write or by close
            self._error = e
            while self._queue.get() is not None:
                pass

    def write(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(data)

    def close(self, raise_error: bool = True) -> None:
        """Waits until everything queued is written; raises what writing it raised."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None and raise_error:
            raise self._error


def _data_files(landing_uri: str, entity: Entity, day: date, log: Callable[[str], None]) -> list[LandingFile]:
    part = partition_relpath(entity, day)
    try:
        listed = list_partition(landing_uri, entity, day)
    except Exception as e:  # listing failures (permissions, missing bucket, endpoint) fail the partition
        raise LandingError(f"{part}: cannot list the partition under {landing_uri}: {e}") from e
    suffixes = CSV_SUFFIXES if entity.format == "csv" else JSONL_SUFFIXES
    for f in listed:
        if not accepts(entity, f.name):
            log(f"{f.relpath}: ignored (not a data file of {entity.path}: expected {' or '.join(suffixes)})")
    return [f for f in listed if accepts(entity, f.name)]


def _read(
    f: LandingFile, entity: Entity, part: str, fmt: RowFormat, ip_hash_key: str, log: Callable[[str], None]
):
    """The file's batches; any problem with the file itself becomes a LandingError."""
    what_to_do = (
        f"Nothing of partition {part} was loaded and its previous load is kept; "
        "fix or replace the file in the landing zone and rerun the day."
    )
    try:
        with f.open() as stream:
            yield from read_batches(entity, f.relpath, stream, fmt, ip_hash_key=ip_hash_key, log=log)
    except FileError as e:
        raise LandingError(f"{f.relpath}: {e}. {what_to_do}") from None
    except OSError as e:
        raise LandingError(f"{f.relpath}: cannot be read: {e}. {what_to_do}") from e
    except Exception as e:
        if type(e).__module__.startswith(("botocore", "boto3")):
            raise LandingError(f"{f.relpath}: cannot be read from S3: {e}. {what_to_do}") from e
        raise


def _log_file(
    f: LandingFile, loaded: int, rejected: int, first_rejected: list[Rejected], log: Callable[[str], None]
) -> None:
    log(f"{f.relpath}: {loaded} rows, {rejected} rejected")
    for r in first_rejected:
        log(f"{f.relpath} line {r.line}: rejected: {r.reason}")
    if rejected > MAX_LOGGED_REJECTIONS:
        log(f"{f.relpath}: ... and {rejected - MAX_LOGGED_REJECTIONS} more rejected rows (raw.rejected_rows)")


def _delete_previous(conn: psycopg.Connection, entity: Entity, day: date) -> None:
    table = sql.Identifier("raw", entity.table)
    conn.execute(sql.SQL("delete from {} where _partition_date = %s").format(table), (day,))
    conn.execute(
        "delete from raw.rejected_rows where entity = %s and _partition_date = %s", (entity.path, day)
    )
    conn.execute("delete from raw.load_batches where entity = %s and partition_date = %s", (entity.path, day))


def _copy_text(value: object) -> str:
    """A value as a field of COPY's text format."""
    text = (
        value if isinstance(value, str) else value.isoformat() if hasattr(value, "isoformat") else str(value)
    )
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _spool_rejected(
    spool: IO[bytes],
    entity: Entity,
    day: date,
    relpath: str,
    batch: Batch,
    batch_id: str,
    loaded_at: datetime,
) -> None:
    """Rejected rows as lines of COPY text data, to be copied once the valid rows are in."""
    if batch.rejected:
        head = "\t".join(map(_copy_text, (entity.path, day, relpath)))
        tail = "\t".join(map(_copy_text, (batch_id, loaded_at)))
        lines = (
            f"{head}\t{r.line}\t{_copy_text(r.raw_line)}\t{_copy_text(r.reason)}\t{tail}\n"
            for r in batch.rejected
        )
        spool.write("".join(lines).encode())


def _write_rejected(conn: psycopg.Connection, spool: IO[bytes]) -> None:
    if not spool.tell():
        return
    spool.seek(0)
    with conn.cursor() as cur, cur.copy(f"copy raw.rejected_rows ({_REJECTED_COLUMNS}) from stdin") as copy:
        while data := spool.read(1 << 20):
            copy.write(data)
