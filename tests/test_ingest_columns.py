"""The loader's Arrow paths against the row-at-a-time reader (the reference), on files clean enough for them to
take (no blank lines, quotes or odd JSON), with values of every shape: non-ASCII text, Unicode and ASCII control
whitespace, values that break a rule, JSON escapes and unknown fields. And the JSON text that Arrow's reader would
read otherwise than json.loads sends its chunk line by line, with the same result."""

from __future__ import annotations

import csv
import io
import json
import random

import pytest
from test_landing_batches import KEY, pool, same, valid

from referral_pipeline.entities import ENTITIES, Entity, entity
from referral_pipeline.landing import readers

WS = ["", " ", "\t", "\xa0", "\u2003", "\x1c", "\x0b", "\x1f", "\x85"]


def clean_value(rng: random.Random, col) -> str:
    r = rng.random()
    if r < 0.05:
        return rng.choice(WS)
    texts = pool(col)
    text = rng.choice([t for t in texts if valid(col, t)] if r < 0.9 else texts)
    if rng.random() < 0.2:
        text = rng.choice(WS) + text + rng.choice(WS)
    return text


def clean_csv(rng: random.Random, e: Entity, rows: int) -> str:
    columns = [c.name for c in e.columns if c.required or rng.random() < 0.85] + ["exported_by"]
    rng.shuffle(columns)
    buf = io.StringIO()
    writer = csv.writer(
        buf, lineterminator=rng.choice(["\n", "\r\n"]), quoting=csv.QUOTE_NONE, escapechar="\\"
    )
    writer.writerow(columns)
    for _ in range(rows):
        values = {c.name: clean_value(rng, c) for c in e.columns}
        writer.writerow([values.get(c, "") for c in columns])
    return buf.getvalue()


def clean_jsonl(rng: random.Random, e: Entity, rows: int, extra: bool = True) -> str:
    lines = []
    for _ in range(rows):
        obj: dict = {}
        for c in e.columns:
            if rng.random() < 0.9:
                obj[c.name] = clean_value(rng, c) if rng.random() < 0.95 else None
        if extra and rng.random() < 0.1:
            obj["exported_by"] = "job-7"
        if extra and rng.random() < 0.05:
            obj["attempt"] = rng.choice([1, 2])
        lines.append(
            json.dumps(obj, ensure_ascii=rng.random() < 0.5, separators=rng.choice([None, (",", ":")]))
        )
    return "\n".join(lines) + "\n"


@pytest.fixture
def line_by_line(monkeypatch) -> list[int]:
    """Counts the JSONL chunks read line by line (not by Arrow), the CSV records read by csv.reader and the CSV
    lines split one by one (not by Arrow's CSV reader)."""
    calls: list[int] = []
    jsonl_lines, exact_record = readers._jsonl_lines, readers._CsvBatches._exact_record
    split_by_lines = readers._CsvBatches._split_by_lines

    def spy_split(*args, **kwargs):
        calls.append(1)
        return split_by_lines(*args, **kwargs)

    def spy_jsonl(*args, **kwargs):
        calls.append(1)
        return jsonl_lines(*args, **kwargs)

    def spy_csv(*args, **kwargs):
        calls.append(1)
        return exact_record(*args, **kwargs)

    monkeypatch.setattr(readers, "_jsonl_lines", spy_jsonl)
    monkeypatch.setattr(readers._CsvBatches, "_exact_record", spy_csv)
    monkeypatch.setattr(readers._CsvBatches, "_split_by_lines", spy_split)
    return calls


@pytest.mark.parametrize("chunk", [256, 4096, 1 << 20])
@pytest.mark.parametrize("e", ENTITIES, ids=lambda e: e.path)
def test_clean_files_with_values_of_every_shape(e: Entity, chunk: int, monkeypatch, line_by_line):
    monkeypatch.setattr(readers, "CHUNK_BYTES", chunk)
    rng = random.Random(f"{e.path}:{chunk}")
    for n in range(4):
        rows = rng.choice([1, 50, 400])
        text = clean_csv(rng, e, rows) if e.format == "csv" else clean_jsonl(rng, e, rows)
        same(e, f"part-{n}.{e.format}", text.encode())
    assert not line_by_line


@pytest.mark.parametrize("odd", [["   ", "a,b", ",,,,,,,,,,,,,", " \t "], ["", "\t", "a,b", ",", "  "]])
def test_csv_lines_that_are_not_plain_records(monkeypatch, odd: list[str]):
    """Whitespace-only lines and wrong field counts among plain lines (Arrow's CSV reader hands them to the
    row-at-a-time path), blank and two-character lines (the chunk is split line by line), and a file that
    ends without a newline or with a carriage return."""
    e = entity("marketing/activities")
    rng = random.Random(3)
    lines = clean_csv(rng, e, 200).split("\n")
    for i, text in zip((3, 50, 51, 120, 121), odd, strict=False):
        lines[i] = text
    for ending in ("", "\r", "\n"):
        data = ("\n".join(lines).rstrip("\n") + ending).encode()
        for chunk in (300, 1 << 20):
            monkeypatch.setattr(readers, "CHUNK_BYTES", chunk)
            same(e, "a.csv", data)


ODD_LINES = [
    '{"click_id": "c-9", "link_code": "L", "clicked_at": "2025-01-07", "visitor_id": "v", "score": NaN}',
    '{"click_id": "c-9", "link_code": "L", "clicked_at": "2025-01-07", "visitor_id": "v", "score": -NaN}',
    '{"click_id": "c-9", "link_code": "L", "clicked_at": "2025-01-07", "visitor_id": "v", "score": Infinity}',
    '{"click_id": "c-9", "link_code": "L", "clicked_at": "2025-01-07", "visitor_id": "v", "score": -Inf}',
    '{"click_id": "c-9", "link_code": "L", "clicked_at": "2025-01-07", "visitor_id": "v", "s": [1, NaN]}',
    '{"click_id": "c-9", "link_code": "L", "clicked_at": "2025-01-07", "visitor_id": "v", "click_id": "c-10"}',
    '{"click_id": "c-9", "link_code": 5, "clicked_at": "2025-01-07", "visitor_id": "v"}',
    '{"click_id": "c-9", "link_code": "L", "clicked_at": "2025-01-07", "visitor_id": "v\\ud83d\\ude00"}',
    '{"click_id": "c-9", "link_code": "L", "clicked_at": "2025-01-07", "visitor_id": "v\\u0000"}',
    '{"click_id": "c-9", "link_code": "L", "clicked_at": "2025-01-07", "visitor_id": "v"}\r',
    '{"click_id": "c-9", "link_code": "L", "clicked_at": "2025-01-07", "visitor_id": "v"} {"click_id": "c-8"}',
    ' {"click_id": "c-9", "link_code": "L", "clicked_at": "2025-01-07", "visitor_id": "v"}',
    '{"click_id": "c-9", "link_code": "L", "clicked_at": "2025-01-07", "visitor_id": "v", "n": 1e400}',
    '{"click_id": "c-9", "link_code": "L", "clicked_at": "2025-01-07", "visitor_id": "v", "n": {"a": [1, "x"]}}',
    '{"click_id": "c-9", "link_code": "L", "clicked_at": "2025-01-07", "visitor_id": "v", "n": "Info"}',
    '{"click_id": "c-9", "link_code": "L", "clicked_at": "2025-01-07", "visitor_id": "v", "\\u0063ountry": "DE"}',
    '{"click_id": "c-9", "link_code": "L", "clicked_at": "2025-01-07", "visitor_id": "v", "n": 01}',
]


@pytest.mark.parametrize("odd", ODD_LINES)
def test_json_that_arrow_reads_otherwise_reads_like_the_reference(odd: str):
    e = entity("links/clicks")
    rng = random.Random(odd)
    lines = clean_jsonl(rng, e, 30, extra=False).splitlines()
    lines.insert(rng.randrange(len(lines)), odd)
    same(e, "c.jsonl", ("\n".join(lines) + "\n").encode())


def test_json_escapes_and_unknown_fields_take_the_arrow_path(line_by_line):
    e = entity("links/clicks")
    lines = [
        '{"click_id": "c-1", "link_code": "L\\/1", "clicked_at": "2025-01-07T10:00:00Z", "visitor_id": "v\\u00e9",'
        ' "country": "\\u65e5\\u672c", "user_agent": "a\\\\b\\"c\\td", "ip_address": " 10.0.0.1\\u00a0"}',
        '{"click_id": "c-2", "link_code": "L", "clicked_at": "2025-01-07", "visitor_id": "v", "utm": {"a": 1},'
        ' "tags": ["x"], "n": 2.5, "ok": true, "gone": null}',
        '{"click_id": "c-3", "link_code": "L", "clicked_at": "2025-13-45T25:00:00Z", "visitor_id": "v"}',
        '{"click_id": " ", "link_code": "L", "clicked_at": "2025-01-07", "visitor_id": "v", "ip_address": null}',
        "{}",
    ]
    same(e, "c.jsonl", ("\n".join(lines) + "\n").encode())
    assert not line_by_line


def test_ip_hashes_in_the_arrow_path_match_the_reference():
    e = entity("links/clicks")
    ips = ["10.0.0.1", " 10.0.0.1 ", "::1", "fe80::1%eth0", "ip é", "\u200310.0.0.2", ""]
    lines = [
        json.dumps(
            {
                "click_id": f"c-{i}",
                "link_code": "L",
                "clicked_at": "2025-01-07",
                "visitor_id": "v",
                "ip_address": ip,
            }
        )
        for i, ip in enumerate(ips * 3)
    ]
    same(e, "c.jsonl", ("\n".join(lines) + "\n").encode())
    assert KEY
