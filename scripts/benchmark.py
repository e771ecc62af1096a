"""Benchmarks. Prints figures; asserts nothing.

    python scripts/benchmark.py ingest [--rows 1000000] [--rounds 3] [--server URL]
    python scripts/benchmark.py pipeline [--scale medium] [--days 30] [--server URL]
    python scripts/benchmark.py nightly [--scale large] [--days 30] [--clicks-per-day N] [--server URL]
    python scripts/benchmark.py growth [--scale medium] [--days 360] [--clicks-per-day N] [--server URL]
    python scripts/benchmark.py scale [--scale large] [--days 365] [--clicks-per-day 30000] [--landing DIR]
        [--server URL]

`ingest`: for a CSV entity (marketing/activities) and a JSONL entity (links/clicks), writes one landing file
of --rows synthetic rows (valid except about 0.1% that the loader rejects, shaped like the exports of
referral_pipeline/generate.py), then times, in alternating rounds on the same server:
- `load_partition` of that file (the loader, everything included: validation, IP hashing, lineage, rejected
  rows, one transaction), into a freshly emptied raw table;
- the anchor: `COPY ... FROM STDIN` of the same file's bytes into a fresh untyped table without indexes, as
  text: the CSV file with `(FORMAT csv, HEADER)` into one text column per header field, the JSONL file with
  each line into a single text column.
- a second anchor: `COPY ... FROM STDIN` of the same rows already in COPY format (the loader's own COPY
  BINARY data for the file, made beforehand) into the emptied raw table itself, with its indexes: what any
  loader writing these rows to this table pays on the server.
It prints the rates per round, the best of each, and the ratios of the best rates (loader / raw COPY).

`nightly`: generates --days of sample exports, backfills all but the last day through the real nightly job (one
run), then runs the last day's nightly twice (the second is a rerun) and compares each run's wall time with the
SQL it executed, replayed alone (the compiled selects of its tables and data tests, rolled back); prints the
slowest five statements.

`growth`: generates --days (e.g. 360) of sample exports, backfills to day 29, times the nightly of day 30, backfills
to the day before the last, times the last day's nightly; prints both against their replayed SQL, the ratio of
the SQL (same daily volume: the generator's days are alike) and the slowest five statements of the late one.

`scale`: one year of history at about 30,000 touchpoints a day (the generator's volume mode, --clicks-per-day;
generated into --landing and kept there, or reused from it), backfilled into the fresh database in one run (a
progress line per step and every minute), then the next day's nightly in a process of its own, as
`referral-pipeline nightly` runs: its wall time against its SQL replayed alone, the slowest five models with
their share of the nightly, and its peak RSS (the run's process tree sampled with psutil, and getrusage of the
run's process and of its largest child, dbt).

--clicks-per-day N (nightly, growth, scale): the generator's volume mode, about N link clicks a day of browsing
traffic written column-wise; with --scale xlarge (10 x large, with large's 800 partners) and 25000 clicks a day:
ten times the large volume. nightly and growth print the slowest five models by their time inside the run's dbt
invocation, with each one's share of the nightly's wall time, and whether any is above 5%.

`pipeline`: generates sample exports (referral_pipeline/generate.py), loads every partition, builds dbt.

Uses a throw-away database on --server (default: the embedded server) and a temporary folder."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from pathlib import Path

import psycopg

from referral_pipeline.config import DBT_PROJECT_DIR, DEFAULT_IP_HASH_KEY, Settings
from referral_pipeline.console import Reporter
from referral_pipeline.dbt_cli import build_args, dbt_env
from referral_pipeline.entities import ENTITIES, entity
from referral_pipeline.generate import SCALES, generate
from referral_pipeline.landing import load_partition
from referral_pipeline.landing.columns import SIGNATURE, TRAILER, RowFormat
from referral_pipeline.landing.readers import read_batches
from referral_pipeline.rules import load_rules, write_rules
from referral_pipeline.warehouse import ensure_schema, start_embedded

DAY = dt.date(2025, 1, 7)
CSV_ENTITY, JSONL_ENTITY = entity("marketing/activities"), entity("links/clicks")
ACTIVITY_TYPES = ("form_fill", "email_click", "webinar_attended", "content_download")
UTM = (
    ("google", "cpc", "q1", ""),
    ("linkedin", "social", "brand", ""),
    ("newsletter", "email", "", ""),
    ("", "", "", ""),
    ("partner-site", "Partner", "partners", " PC-0042 "),
    ("bing", "cpc", "brand", "ad-variant-b"),
)
PAGES = ("pricing", "demo", "webinar", "blog/partners", "")
AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2)",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X)",
    "Mozilla/5.0 (X11; Linux x86_64)",
)
REFERERS = ("", "", "https://blog.partner.example/post", "https://news.example.org/", "https://t.co/x1")
COUNTRIES = ("US", "US", "US", "GB", "DE", "FR", "CA", "NL", "ES", "AU")
OFFSETS = tuple(dt.timezone(dt.timedelta(minutes=m)) for m in (120, -300, 540, 330, 60, -480))


def _timestamps(rng: random.Random, n: int) -> list[str]:
    """n event times in time order over DAY, as exports write them: mostly `Z`, some with another offset,
    some without one."""
    t0 = dt.datetime.combine(DAY, dt.time(), dt.UTC)
    out = []
    for s in sorted(rng.randrange(86400) for _ in range(n)):
        t = t0 + dt.timedelta(seconds=s)
        r = rng.random()
        if r < 0.8:
            out.append(t.strftime("%Y-%m-%dT%H:%M:%SZ"))
        elif r < 0.9:
            out.append(t.astimezone(rng.choice(OFFSETS)).isoformat(timespec="seconds"))
        else:
            out.append(t.strftime("%Y-%m-%dT%H:%M:%S"))
    return out


def _email(rng: random.Random, i: int) -> str:
    e = f"first.last{i % 40000}@{'corp' if i % 3 else 'example'}{i % 900}.com"
    r = rng.random()
    return e.upper() if r < 0.04 else f" {e} " if r < 0.06 else e


def write_activities(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    header = "activity_id,email,activity_type,occurred_at,utm_source,utm_medium,utm_campaign,utm_content,landing_url"
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(header + "\n")
        stamps = _timestamps(rng, rows)
        for start in range(0, rows, 50_000):
            lines = []
            for i, ts in enumerate(stamps[start : start + 50_000], start=start):
                src, medium, campaign, content = rng.choice(UTM)
                url = f"https://www.example.com/{rng.choice(PAGES)}" + (f"?utm_source={src}" if src else "")
                kind = ACTIVITY_TYPES[i % 4] if i % 1000 != 999 else "page_view"  # 0.1% rejected
                lines.append(
                    f"ACT-{i:08d},{_email(rng, rng.randrange(rows))},{kind},{ts},{src},{medium},{campaign},"
                    f"{content},{url}\n"
                )
            f.write("".join(lines))


def write_clicks(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8", newline="") as f:
        visitor, ip, left = 0, None, 0
        stamps = _timestamps(rng, rows)
        for start in range(0, rows, 50_000):
            lines = []
            for i, ts in enumerate(stamps[start : start + 50_000], start=start):
                if not left:  # a visitor clicks one to three times, from one IP address (or none)
                    visitor, left = visitor + 1, rng.randint(1, 3)
                    ip = ".".join(str(rng.randint(1, 254)) for _ in range(4)) if rng.random() < 0.9 else None
                left -= 1
                obj = {
                    "click_id": f"clk-{i:09d}",
                    "link_code": f"LNK{rng.randrange(5000):05d}",
                    "clicked_at": ts if i % 1000 != 999 else "2025-13-45T25:00:00Z",  # 0.1% rejected
                    "visitor_id": f"v-{visitor:08d}",
                    "user_agent": rng.choice(AGENTS),
                    "country": rng.choice(COUNTRIES),
                    "referer_url": rng.choice(REFERERS),
                }
                if ip:
                    obj["ip_address"] = ip
                lines.append(json.dumps({k: v for k, v in obj.items() if v}, ensure_ascii=False) + "\n")
            f.write("".join(lines))


def _checkpoint(url: str) -> None:
    """Start each timed step from the same state: no dirty buffers or WAL of the previous step to write."""
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("checkpoint")
    except psycopg.Error:
        pass


def raw_copy(url: str, path: Path, csv_format: bool) -> float:
    """Seconds to COPY the file's bytes as text into a fresh untyped table (the anchor)."""
    with psycopg.connect(url, autocommit=True) as conn:
        if csv_format:
            header = path.open(encoding="utf-8").readline().strip().split(",")
            columns = ", ".join(f'"{h}" text' for h in header)
            options = "format csv, header true"
        else:
            columns, options = "line text", "format csv, quote e'\\x01', delimiter e'\\x02'"
        conn.execute(f"drop table if exists bench_anchor; create table bench_anchor ({columns})")
    _checkpoint(url)
    started = time.perf_counter()
    with (
        psycopg.connect(url) as conn,
        conn.cursor() as cur,
        cur.copy(f"copy bench_anchor from stdin ({options})") as copy,
        path.open("rb") as f,
    ):
        while data := f.read(1 << 20):
            copy.write(data)
    return time.perf_counter() - started


def encoded(e, path: Path, landing: Path, out: Path) -> None:
    """The loader's own COPY BINARY data for the file (untimed), for the typed anchor."""
    relpath = path.relative_to(landing).as_posix()
    fmt = RowFormat(e, DAY, relpath, "bench-batch", dt.datetime.now(dt.UTC))
    with path.open("rb") as f, out.open("wb") as o:
        o.write(SIGNATURE)
        for batch in read_batches(e, relpath, f, fmt, ip_hash_key=DEFAULT_IP_HASH_KEY, log=lambda m: None):
            o.write(batch.data)
        o.write(TRAILER)


def typed_copy(url: str, e, data: Path) -> float:
    """Seconds to COPY the same rows, already in COPY BINARY format, into the emptied raw table itself."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"truncate raw.{e.table}")
    _checkpoint(url)
    started = time.perf_counter()
    with (
        psycopg.connect(url) as conn,
        conn.cursor() as cur,
        cur.copy(RowFormat.copy_sql(e)) as copy,
        data.open("rb") as f,
    ):
        while chunk := f.read(1 << 20):
            copy.write(chunk)
    return time.perf_counter() - started


def loader(url: str, landing: Path, e) -> tuple[float, float, int, int]:
    """Seconds to load the partition with `load_partition` into emptied raw tables, CPU seconds of this
    (client) process meanwhile, rows loaded, rows rejected."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"truncate raw.{e.table}, raw.rejected_rows, raw.load_batches")
    _checkpoint(url)
    started, cpu = time.perf_counter(), time.process_time()
    result = load_partition(url, e, DAY, str(landing), ip_hash_key=DEFAULT_IP_HASH_KEY, log=lambda m: None)
    return time.perf_counter() - started, time.process_time() - cpu, result.rows_loaded, result.rows_rejected


def ingest(url: str, rows: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        landing = Path(tmp)
        files = []
        for e, name, write in (
            (CSV_ENTITY, "activities-part-0000.csv", write_activities),
            (JSONL_ENTITY, "clicks-part-0000.jsonl", write_clicks),
        ):
            folder = landing / e.path / f"dt={DAY.isoformat()}"
            folder.mkdir(parents=True)
            t = time.perf_counter()
            write(folder / name, rows)
            files.append((e, folder / name))
            size = (folder / name).stat().st_size
            print(f"wrote {e.path}: {rows} rows, {size / 2**20:.0f} MiB in {time.perf_counter() - t:.1f} s")
        print(
            "raw COPY untyped = COPY FROM STDIN of the same file's bytes, as text, into a fresh table of text"
            " columns without\n  indexes (CSV: FORMAT csv, HEADER, one text column per field; JSONL: each line into"
            " one text column)\nraw COPY typed = COPY FROM STDIN of the same rows already in COPY format (the"
            " loader's own COPY BINARY data,\n  made beforehand) into the emptied raw table itself, with its indexes"
        )
        summary = []
        for e, path in files:
            typed = path.with_suffix(".copy")
            encoded(e, path, landing, typed)
            best = {"loader": 0.0, "untyped": 0.0, "typed": 0.0}
            for n in range(1, rounds + 1):
                rates = {"untyped": rows / raw_copy(url, path, e.format == "csv")}
                rates["typed"] = rows / typed_copy(url, e, typed)
                load_secs, cpu, loaded, rejected = loader(url, landing, e)
                rates["loader"] = (loaded + rejected) / load_secs
                best = {k: max(v, rates[k]) for k, v in best.items()}
                print(
                    f"{e.path:<21} round {n}: loader {rates['loader']:>9,.0f} rows/s ({loaded} loaded,"
                    f" {rejected} rejected, client CPU {cpu / rows * 1e6:.1f} us/row)"
                    f"   raw COPY untyped {rates['untyped']:>9,.0f} rows/s"
                    f" (ratio {rates['loader'] / rates['untyped']:.2f})   typed {rates['typed']:>9,.0f} rows/s"
                    f" (ratio {rates['loader'] / rates['typed']:.2f})",
                    flush=True,
                )
            typed.unlink()
            summary.append((e.path, best))
        print("best of each:")
        for path, best in summary:
            print(
                f"  {path:<21} loader {best['loader']:>9,.0f} rows/s   raw COPY untyped {best['untyped']:>9,.0f}"
                f" rows/s   ratio {best['loader'] / best['untyped']:.2f}   raw COPY typed {best['typed']:>9,.0f}"
                f" rows/s   ratio {best['loader'] / best['typed']:.2f}"
            )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak memory of this process (writing the files included): {peak:.0f} MiB")


def pipeline(url: str, scale: str, days: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        start = dt.date(2025, 1, 1)
        t = time.perf_counter()
        generate(Path(tmp), start, days, scale=scale, seed=7, log=lambda m: None)
        print(f"generate  {scale} x {days} days: {time.perf_counter() - t:8.2f} s")
        rows = 0
        t = time.perf_counter()
        for i in range(days):
            day = start + dt.timedelta(days=i)
            for e in ENTITIES:
                rows += load_partition(
                    url, e, day, tmp, ip_hash_key=DEFAULT_IP_HASH_KEY, log=lambda m: None
                ).rows_loaded
        secs = time.perf_counter() - t
        print(f"load      {rows} rows in {secs:8.2f} s = {rows / secs:10.0f} rows/s")
    with psycopg.connect(url) as conn:
        write_rules(conn, load_rules(Settings.from_env().rules_file))
    run_date = start + dt.timedelta(days=days - 1)
    env = {**os.environ, **dbt_env(url, run_date)}
    for label in ("dbt build (first)", "dbt build (again)"):
        t = time.perf_counter()
        proc = subprocess.run(
            [
                "dbt",
                *build_args(),
                "--project-dir",
                str(DBT_PROJECT_DIR),
                "--profiles-dir",
                str(DBT_PROJECT_DIR),
                "--quiet",
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        status = "ok" if proc.returncode == 0 else f"FAILED ({proc.stdout[-300:]})"
        print(f"{label:<18}: {time.perf_counter() - t:8.2f} s {status}")


def _compiled_file(target: Path, node: dict) -> Path:
    """Where dbt writes a node's compiled SQL: models and singular tests beside their path, generic tests in a
    folder named after the .yml file that declares them."""
    path = target / "compiled" / node["package_name"] / node["original_file_path"]
    return path / node["path"] if node["original_file_path"].endswith(".yml") else path


def _nodes_run_since(target: Path, since: float) -> list[dict]:
    """The models and data tests whose compiled SQL dbt wrote after `since`: what a run executed."""
    manifest = json.loads((target / "manifest.json").read_text())
    nodes = [n for n in manifest["nodes"].values() if n["resource_type"] in ("model", "test")]
    return [n for n in nodes if _written_since(_compiled_file(target, n), since)]


def _written_since(path: Path, since: float) -> bool:
    try:
        return path.stat().st_mtime >= since
    except FileNotFoundError:  # a node this project never compiled
        return False


def replay_sql(url: str, target: Path, nodes: list[dict]) -> list[tuple[float, str]]:
    """Time the SQL of the nodes a run executed, alone: each table or incremental model's compiled select into a
    temporary table, each data test's select, each in a transaction rolled back (nothing changes). Views cost
    nothing to create: their queries run inside the models and tests that read them."""
    times = []
    with psycopg.connect(url) as conn:
        for node in nodes:
            if node["resource_type"] == "model" and node["config"].get("materialized") == "view":
                continue
            sql = _compiled_file(target, node).read_text()
            statement = (
                f"create temporary table _replay as {sql}"
                if node["resource_type"] == "model"
                else f"select count(*) from ({sql}) as _t"
            )
            t = time.perf_counter()
            conn.execute(statement)
            times.append((time.perf_counter() - t, node["name"]))
            conn.rollback()
    return sorted(times, reverse=True)


def _dbt_node_times(target: Path, since: float) -> dict[str, tuple[str, float]]:
    """Each node's time inside the run's dbt invocation (run_results.json, if written after `since`): name ->
    (resource type, seconds). With dbt's 2 threads, nodes overlap: their times can add up to more than the wall."""
    path = target / "run_results.json"
    if not _written_since(path, since):
        return {}
    results = json.loads(path.read_text())["results"]
    return {
        r["unique_id"].split(".")[-1]: (r["unique_id"].split(".")[0], r["execution_time"]) for r in results
    }


def _timed_nightly(
    url: str, day: dt.date, label: str, instance, log: Path
) -> tuple[float, list[tuple[float, str]], dict[str, tuple[str, float]]]:
    """One nightly run of `day`: prints its wall time against the SQL it ran, replayed alone; returns the wall
    time, the replayed statements (slowest first) and dbt's time per node in the run."""
    from orchestration.run import run_nightly

    target = Settings.from_env().dbt_target_dir
    since = time.time()
    t = time.perf_counter()
    summary = run_nightly(day, output_log=log, instance=instance)
    wall = time.perf_counter() - t
    nodes = _dbt_node_times(target, since)
    replay = replay_sql(url, target, _nodes_run_since(target, since))
    _print_wall(label, wall, replay)
    _print_steps(_step_times(instance, summary.run_id), wall)
    return wall, replay, nodes


def _step_times(instance, run_id: str) -> list[tuple[float, str]]:
    """The run's Dagster steps with their durations (from the run's events), slowest first; and, as the step
    "(start of the run)", the time from the run's start to its first step."""
    from dagster import DagsterEventType

    started, first, out = {}, None, []
    run_start = None
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type == DagsterEventType.RUN_START:
            run_start = record.timestamp
        elif event.event_type == DagsterEventType.STEP_START:
            started[event.step_key] = record.timestamp
            first = record.timestamp if first is None else min(first, record.timestamp)
        elif event.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            if event.step_key in started:
                out.append((record.timestamp - started[event.step_key], event.step_key))
    if run_start is not None and first is not None:
        out.append((first - run_start, "(start of the run)"))
    return sorted(out, reverse=True)


def _print_steps(steps: list[tuple[float, str]], wall: float) -> None:
    print(f"its Dagster steps ({len(steps) - 1}), those of 1 s or more, slowest first:")
    for secs, name in steps:
        if secs >= 1:
            print(f"  {secs:8.2f} s  {secs / wall:6.1%} of the nightly  {name}")


def _print_wall(label: str, wall: float, replay: list[tuple[float, str]]) -> None:
    sql = sum(s for s, _ in replay)
    print(
        f"{label:<24} wall {wall:7.2f} s; its SQL replayed alone {sql:7.2f} s ({len(replay)} statements); "
        f"the rest {wall - sql:6.2f} s; wall / SQL {wall / max(sql, 1e-9):5.2f}; machine load average (1 min)"
        f" {os.getloadavg()[0]:.1f}",
        flush=True,
    )


def _slowest(
    replay: list[tuple[float, str]],
    label: str,
    wall: float,
    nodes: dict[str, tuple[str, float]],
    limit: float = 0.05,
) -> None:
    """The slowest five models of a nightly by their time inside its dbt invocation, with each one's share of
    the nightly's wall time and its SQL replayed alone; then whether any model takes more than `limit` of it."""
    alone = {name: secs for secs, name in replay}
    models = sorted(((secs, name) for name, (kind, secs) in nodes.items() if kind == "model"), reverse=True)
    if not models:  # no run_results.json: rank by the replayed SQL
        models = [(secs, name) for secs, name in replay]
    print(f"slowest five models of {label} (time in dbt's run; share of the nightly's {wall:.2f} s wall):")
    for secs, name in models[:5]:
        print(
            f"  {secs:8.2f} s  {secs / wall:6.1%} of the nightly   replayed alone {alone.get(name, 0.0):8.2f} s  {name}"
        )
    over = [(secs, name) for secs, name in models if secs > limit * wall]
    print(
        f"models above {limit:.0%} of the nightly: "
        + (", ".join(f"{name} ({secs / wall:.1%})" for secs, name in over) if over else "none")
    )


def _history(
    url: str, scale: str, days: int, tmp: str, clicks_per_day: int | None = None, landing: Path | None = None
):
    """Generate `days` of sample exports from 2025-01-01 (or reuse those of `landing`) and point the pipeline at
    them; returns (start, instance, log)."""
    from dagster import DagsterInstance

    start = dt.date(2025, 1, 1)
    landing = landing or Path(tmp) / "landing"
    _exports(landing, start, days, scale, clicks_per_day)
    os.environ.update(
        REFERRAL_WAREHOUSE_URL=url,
        REFERRAL_LANDING_URI=str(landing),
        REFERRAL_EXPORT_URI=str(Path(tmp) / "exports"),
        REFERRAL_DATA_DIR=str(Path(tmp) / "data"),
        REFERRAL_IP_HASH_KEY="benchmark-key",
    )
    return start, DagsterInstance.ephemeral(), Path(tmp) / "runs.log"  # runs.log: what the runs print


def _exports(landing: Path, start: dt.date, days: int, scale: str, clicks_per_day: int | None) -> None:
    """Generate the sample exports into `landing`, or reuse them when `landing` already holds the exports of the
    same arguments (recorded in landing/_generated.json when they were written)."""
    stamp = landing / "_generated.json"
    wanted = {
        "start": start.isoformat(),
        "days": days,
        "scale": scale,
        "seed": 7,
        "clicks_per_day": clicks_per_day,
    }
    if stamp.is_file():
        found = json.loads(stamp.read_text())
        if {k: found.get(k) for k in wanted} != wanted:
            raise SystemExit(f"{stamp}: holds exports of {found}, not of {wanted}; give another --landing")
        print(f"generate  reusing the exports in {landing} ({found['rows']:,} rows)", flush=True)
        return
    if landing.is_dir() and any(landing.iterdir()):
        raise SystemExit(f"{landing}: not empty and without _generated.json; give an empty or new --landing")
    what = f"{scale} x {days} days" + (f", {clicks_per_day:,} clicks a day" if clicks_per_day else "")
    t = time.perf_counter()
    summary = generate(
        landing,
        start,
        days,
        scale=scale,
        seed=7,
        clicks_per_day=clicks_per_day,
        log=(lambda m: print(f"  {time.perf_counter() - t:7.1f} s {m.strip()}", flush=True))
        if clicks_per_day
        else (lambda m: None),
    )
    rows = sum(summary["rows"].values())
    stamp.write_text(json.dumps(wanted | {"rows": rows, "summary_rows": summary["rows"]}))
    print(f"generate  {what}: {time.perf_counter() - t:8.2f} s, {rows:,} rows", flush=True)


@contextlib.contextmanager
def _heartbeat(label: str, every: float = 60.0):
    """A line every `every` seconds while a long step runs."""
    done = threading.Event()
    started = time.perf_counter()
    stream = sys.stdout  # a run sends what is printed meanwhile to its log

    def beat() -> None:
        while not done.wait(every):
            print(f"  {label}: {time.perf_counter() - started:7.0f} s so far", file=stream, flush=True)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _backfill(first: dt.date, last: dt.date, instance, log: Path, progress: bool = False) -> float:
    from orchestration.run import run_nightly

    t = time.perf_counter()
    if progress:
        print(f"history: one backfill run {first}..{last} (progress below; full log: {log})", flush=True)
        with _heartbeat("backfill"):
            run_nightly(
                first, last, output_log=log, instance=instance, report=Reporter(sys.stdout, live=False)
            )
    else:
        run_nightly(first, last, output_log=log, instance=instance)
    secs = time.perf_counter() - t
    print(f"history: one backfill run {first}..{last}: {secs:8.2f} s", flush=True)
    return secs


def nightly(url: str, scale: str, days: int, clicks_per_day: int | None = None) -> None:
    """One nightly run after `days - 1` days of history: its wall time against the SQL it ran, replayed alone."""
    with tempfile.TemporaryDirectory() as tmp:
        start, instance, log = _history(url, scale, days, tmp, clicks_per_day)
        last = start + dt.timedelta(days=days - 1)
        _backfill(start, last - dt.timedelta(days=1), instance, log, progress=clicks_per_day is not None)
        _history_counts(url)
        wall, replay, nodes = _timed_nightly(url, last, "nightly", instance, log)
        _slowest(replay, "that nightly", wall, nodes)
        wall, replay, nodes = _timed_nightly(url, last, "the same nightly again", instance, log)
        _slowest(replay, "that nightly", wall, nodes)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak memory of the benchmark process (the nightly runs in it): {peak:.0f} MiB")


def growth(url: str, scale: str, days: int, early: int = 30, clicks_per_day: int | None = None) -> None:
    """The nightly of day `early` against the nightly of day `days`, at the same daily volume: how a nightly's
    cost grows with history."""
    with tempfile.TemporaryDirectory() as tmp:
        start, instance, log = _history(url, scale, days, tmp, clicks_per_day)
        day_early = start + dt.timedelta(days=early - 1)
        day_late = start + dt.timedelta(days=days - 1)
        _backfill(start, day_early - dt.timedelta(days=1), instance, log)
        w_early, r_early, _ = _timed_nightly(url, day_early, f"nightly of day {early}", instance, log)
        _backfill(day_early + dt.timedelta(days=1), day_late - dt.timedelta(days=1), instance, log)
        w_late, r_late, n_late = _timed_nightly(url, day_late, f"nightly of day {days}", instance, log)
        with psycopg.connect(url) as conn:
            for day in (day_early, day_late):
                n = conn.execute(
                    "select count(*) from raw.links__clicks where _partition_date = %s", [day]
                ).fetchone()[0]
                print(f"  clicks loaded on {day}: {n}")
            total = conn.execute("select count(*) from marts.fct_touchpoints").fetchone()[0]
        sql_early, sql_late = sum(s for s, _ in r_early), sum(s for s, _ in r_late)
        print(f"touchpoints in history at day {days}: {total}")
        print(f"day {days} / day {early}: wall {w_late / w_early:5.2f}x, SQL {sql_late / sql_early:5.2f}x")
        _slowest(r_late, f"the nightly of day {days}", w_late, n_late)


def _history_counts(url: str) -> int:
    """What the history holds: loaded rows, touchpoints, attributed deals, reward entitlements; returns the raw
    rows."""
    with psycopg.connect(url) as conn:
        one = lambda q: conn.execute(q).fetchone()[0]  # noqa: E731
        clicks = one("select count(*) from raw.links__clicks")
        rows = sum(one(f"select count(*) from raw.{e.table}") for e in ENTITIES)
        touchpoints = one("select count(*) from marts.fct_touchpoints")
        days = one("select count(distinct occurred_at::date) from marts.fct_touchpoints") or 1
        deals = one("select count(distinct deal_id) from marts.fct_attribution")
        rewards = one("select count(*) from marts.fct_reward_entitlements")
    print(
        f"history: {rows:,} raw rows ({clicks:,} clicks); {touchpoints:,} touchpoints (about {touchpoints // days:,}"
        f" a day); {deals:,} attributed deals; {rewards:,} reward entitlements",
        flush=True,
    )
    return rows


# The timed nightly of `scale`, in a process of its own (like `referral-pipeline nightly`): its wall time, its
# steps, and its own peak RSS (getrusage). Started through a shell that forks it: Linux carries a process's peak
# RSS across exec, so a process spawned straight from this one (which holds the backfill's memory) would report
# this one's peak as its own.
_CHILD = """
import datetime as dt, json, resource, sys, time
from pathlib import Path
from dagster import DagsterInstance
from orchestration.run import run_nightly
sys.path.insert(0, sys.argv[3])
from benchmark import _step_times
instance = DagsterInstance.ephemeral()
t = time.perf_counter()
summary = run_nightly(dt.date.fromisoformat(sys.argv[1]), output_log=Path(sys.argv[2]), instance=instance)
wall = time.perf_counter() - t
print(json.dumps({"wall": wall, "self_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "steps": _step_times(instance, summary.run_id)}))
"""


def _nightly_process(day: dt.date, log: Path) -> dict:
    """Run the nightly of `day` in a new process; sample the RSS of its process tree (psutil) every 0.1 s: the
    peak of the sum, and each process's peak (the run's Python process, dbt)."""
    import psutil

    started = time.perf_counter()
    errors = log.with_suffix(".stderr")
    here = str(Path(__file__).resolve().parent)
    with errors.open("w") as err:  # what the process prints before the run's log takes over (warnings)
        proc = subprocess.Popen(
            [
                "/bin/sh",
                "-c",
                '"$0" "$@"; exit $?',
                sys.executable,
                "-c",
                _CHILD,
                day.isoformat(),
                str(log),
                here,
            ],
            stdout=subprocess.PIPE,
            stderr=err,
        )
    tree_peak, peaks = 0, {}
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            rss = 0
            for m in root.children(recursive=True):
                try:
                    used = m.memory_info().rss
                    what = (
                        "dbt"
                        if any("dbt" in a for a in m.cmdline()[:2])
                        else "run"
                        if _CHILD in m.cmdline()
                        else "other"
                    )
                except psutil.Error:
                    continue
                rss += used
                peaks[what] = max(peaks.get(what, 0), used)
            tree_peak = max(tree_peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.1)
    out = proc.stdout.read().decode()
    if proc.returncode != 0:
        tail = errors.read_text().strip().splitlines()[-1:] or ["no message"]
        raise SystemExit(f"the nightly of {day} failed (exit {proc.returncode}): {tail[0]}; see {log}")
    result = json.loads(out.strip().splitlines()[-1])
    return result | {"process_wall": time.perf_counter() - started, "tree_peak": tree_peak, "peaks": peaks}


def scale(url: str, scale_name: str, days: int, clicks_per_day: int, landing: Path | None) -> None:
    """A year (or `days`) of history at `clicks_per_day`: generate it (or reuse --landing), backfill it into the
    fresh database in one run, then time the next day's nightly in its own process: wall, SQL replayed alone,
    slowest five models, peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        start, instance, log = _history(url, scale_name, days, tmp, clicks_per_day, landing)
        last = start + dt.timedelta(days=days - 1)
        backfill = _backfill(start, last - dt.timedelta(days=1), instance, log, progress=True)
        rows = _history_counts(url)
        target = Settings.from_env().dbt_target_dir
        since = time.time()
        print(f"nightly of {last} in its own process (full log: {log}) ...", flush=True)
        with _heartbeat("nightly"):
            run = _nightly_process(last, log)
        nodes = _dbt_node_times(target, since)
        print("replaying its SQL alone ...", flush=True)
        replay = replay_sql(url, target, _nodes_run_since(target, since))
        wall = run["wall"]
        _print_wall(f"nightly of day {days}", wall, replay)
        print(f"  the nightly's process, start-up and imports included: {run['process_wall']:.2f} s")
        _print_steps(run["steps"], wall)
        _slowest(replay, f"the nightly of day {days}", wall, nodes)
        peaks = run["peaks"]
        print(
            f"peak RSS of the nightly (psutil, its process tree sampled every 0.1 s; PostgreSQL's processes not"
            f" included): {run['tree_peak'] / 2**20:.0f} MiB together; the run's Python process"
            f" {peaks.get('run', 0) / 2**20:.0f} MiB (getrusage: {run['self_kib'] / 1024:.0f} MiB), dbt"
            f" {peaks.get('dbt', 0) / 2**20:.0f} MiB"
        )
        print(
            f"backfill of {days - 1} days: {backfill:.0f} s ({rows / backfill:,.0f} raw rows a second, all included)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "part", nargs="?", default="pipeline", choices=["ingest", "pipeline", "nightly", "growth", "scale"]
    )
    ap.add_argument("--rows", type=int, default=1_000_000, help="ingest: rows per file")
    ap.add_argument("--rounds", type=int, default=3, help="ingest: alternating rounds of raw COPY and loader")
    ap.add_argument("--scale", default=None, choices=list(SCALES), help="default: medium; scale: large")
    ap.add_argument("--days", type=int, default=None, help="default: 30; growth: 360; scale: 365")
    ap.add_argument(
        "--clicks-per-day",
        type=int,
        default=None,
        metavar="N",
        help="the generator's volume mode: about N link clicks a day (scale: default 30000)",
    )
    ap.add_argument(
        "--landing",
        type=Path,
        default=None,
        metavar="DIR",
        help="scale: generate the exports into DIR and keep them, or reuse those DIR holds (same arguments)",
    )
    ap.add_argument("--server", default=None, help="PostgreSQL URL of a server to create the database on")
    args = ap.parse_args()
    warnings.filterwarnings(
        "ignore", message="Parameter `backfill_policy`"
    )  # Dagster's notice, at every import

    server = args.server or start_embedded(Settings.from_env())
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"create database {name}")
    url = psycopg.conninfo.make_conninfo(server, dbname=name)
    try:
        ensure_schema(url)
        if args.part == "ingest":
            ingest(url, args.rows, args.rounds)
        elif args.part == "nightly":
            nightly(url, args.scale or "medium", args.days or 30, args.clicks_per_day)
        elif args.part == "growth":
            growth(url, args.scale or "medium", args.days or 360, clicks_per_day=args.clicks_per_day)
        elif args.part == "scale":
            scale(url, args.scale or "large", args.days or 365, args.clicks_per_day or 30_000, args.landing)
        else:
            pipeline(url, args.scale or "medium", args.days or 30)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"drop database if exists {name} with (force)")


if __name__ == "__main__":
    main()
