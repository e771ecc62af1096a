"""The late-data scenario of tests/test_nightly_runs.py: a copy of the golden landing folder with partition files
that arrive after the records they change, and a rules file that gains a second version. The files are written
as the golden exports write those entities (file names `{entity}-part-NNNN.csv` / `.jsonl`, the entity's columns
from referral_pipeline/entities.py), in partitions of their own delivery day.

| day | what lands | what it changes |
|---|---|---|
| 2025-01-09 | a conversion of visitor bv-000195 (email at northvector36.io), dated 2025-01-04 | the visitor's clicks of 1 and 4 January gain an account key and join the path of deal D-00002 (created 2025-01-05): partner PTR-0003 now shares its credit, qualified bonus and commission |
| 2025-01-10 | deal D-00014 again (last delivered on 9 January), newer updated_at: won on 2025-01-10, amount 11000 -> 12500 | the deal's attribution rows (is_won, attributed revenue); a commission appears |
| 2025-01-10 | (no file) the rules file gains version 2025-01-08 before this day's run | every event earned from 8 January on, computed under the first version by earlier runs, moves to the new tier amounts |
| 2025-02-06 | a refund of EUR 40,000 on D-00004 (won 2025-01-19), dated 2025-02-03 | PTR-0002's trailing revenue for February falls below 50,000: its February events, already earned as silver, become registered |

The record update and the rules change share a day: they move different rows (the deal's attribution and its new
commission; the events that existed before that day).
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import gzip
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from referral_pipeline.entities import entity

LATE_CONVERSION_DAY = dt.date(2025, 1, 9)
RECORD_UPDATE_DAY = dt.date(2025, 1, 10)
RULES_CHANGE_DAY = dt.date(2025, 1, 10)
RULES_V2_FROM = dt.date(2025, 1, 8)
LATE_REVERSAL_DAY = dt.date(2025, 2, 6)

# Late conversion: a visitor of the golden data who never converts there, whose clicks (PTR-0003's links) fall in
# the 30-day click lookback of D-00002 (account domain:northvector36.io, created 2025-01-05T16:56:23Z).
VISITOR = "bv-000195"
VISITOR_CLICKS = ("clk-0001290", "clk-0000348")  # landed in dt=2025-01-01 and dt=2025-01-04
CONVERTED_DEAL, CONVERTED_ACCOUNT, CLICK_PARTNER = "D-00002", "domain:northvector36.io", "PTR-0003"
# Record update: an open deal of PTR-0004, last delivered on 2025-01-09, re-delivered won with a new amount.
UPDATED_DEAL, UPDATED_DEAL_PARTNER, UPDATED_AMOUNT = "D-00014", "PTR-0004", "12500.00"
# Late reversal: PTR-0002's biggest deal; its February events are earned on 2025-02-04 (REF-00005, D-00026).
REVERSED_DEAL, TIER_PARTNER = "D-00004", "PTR-0002"


@dataclass(frozen=True)
class Scenario:
    landing: Path
    rules_v1: str  # the golden rules file's text (one version)
    rules_v2: str  # the same file with version 2025-01-08 added


def write_scenario(golden_dir: Path, root: Path) -> Scenario:
    """Copy the golden landing folder under `root` and add the late partition files; return it with both
    rules texts."""
    landing = root / "landing"
    shutil.copytree(golden_dir / "landing", landing)

    add_partition_file(
        landing,
        "links/conversions",
        LATE_CONVERSION_DAY,
        [
            {
                "conversion_id": "cv-900001",
                "visitor_id": VISITOR,
                "email": "nora.lindqvist@northvector36.io",
                "event": "lead",
                "converted_at": "2025-01-04T23:30:00Z",
            }
        ],
    )

    deal = latest_record(landing, "crm/deals", "deal_id", UPDATED_DEAL)
    assert deal["updated_at"] < "2025-01-10T15:01:00Z" and deal["is_won"].lower() in ("false", "0"), deal
    deal.update(
        stage="closed_won",
        is_won="true",
        closed_at="2025-01-10T15:00:00Z",
        amount=UPDATED_AMOUNT,
        updated_at="2025-01-10T15:01:00Z",
    )
    add_partition_file(landing, "crm/deals", RECORD_UPDATE_DAY, [deal])

    add_partition_file(
        landing,
        "crm/deal_reversals",
        LATE_REVERSAL_DAY,
        [
            {
                "reversal_id": "REV-90001",
                "deal_id": REVERSED_DEAL,
                "reversal_type": "refund",
                "amount": "40000.00",
                "occurred_at": "2025-02-03T10:00:00Z",
            }
        ],
    )

    rules_v1 = (golden_dir / "program_rules.yml").read_text(encoding="utf-8")
    return Scenario(landing=landing, rules_v1=rules_v1, rules_v2=with_second_version(rules_v1))


def with_second_version(rules_text: str) -> str:
    """The rules file with a version effective from RULES_V2_FROM appended: the last version's parameters, with
    every tier's commission rate and bonuses raised (thresholds unchanged)."""
    rules = yaml.safe_load(rules_text)
    v2 = copy.deepcopy(rules["versions"][-1])
    v2["effective_from"] = RULES_V2_FROM
    raised = {
        "registered": (0.12, 60, 300),
        "silver": (0.16, 80, 420),
        "gold": (0.22, 110, 550),
    }
    for tier in v2["tiers"]:
        tier["commission_rate"], tier["referral_bonus"], tier["qualified_bonus"] = raised[tier["name"]]
    # appended as text, so that the first version stays byte for byte the golden file's
    assert rules_text.rstrip().splitlines()[-1].startswith("      - {name:"), "versions must end the file"
    block = yaml.safe_dump([v2], sort_keys=False)
    return rules_text.rstrip("\n") + "\n" + "".join(f"  {line}\n" for line in block.splitlines())


def _open_text(path: Path):
    return (
        gzip.open(path, "rt", encoding="utf-8", newline="")
        if path.suffix == ".gz"
        else open(path, encoding="utf-8", newline="")
    )


def latest_record(landing: Path, entity_path: str, key: str, value: str) -> dict[str, str]:
    """The last delivered version of a record (partition date, file name, line order), restricted to the
    entity's columns."""
    ent = entity(entity_path)
    found = None
    for path in sorted((landing / entity_path).glob("dt=*/*")):
        with _open_text(path) as f:
            for row in csv.DictReader(f):
                if (row.get(key) or "").strip() == value:
                    found = {c.name: (row.get(c.name) or "").strip() for c in ent.columns}
    assert found is not None, f"{entity_path}: no record {key}={value}"
    return found


def add_partition_file(landing: Path, entity_path: str, day: dt.date, rows: list[dict[str, str]]) -> Path:
    """Write `rows` as the next file of the partition `dt=day` (`{entity}-part-NNNN.csv` or `.jsonl`), with the
    entity's columns in contract order."""
    ent = entity(entity_path)
    columns = [c.name for c in ent.columns]
    for row in rows:
        unknown = set(row) - set(columns)
        assert not unknown, f"{entity_path}: no such columns {sorted(unknown)}"
    folder = landing / entity_path / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    taken = [p for p in folder.iterdir() if p.name.startswith(f"{ent.name}-part-")]
    path = folder / f"{ent.name}-part-{len(taken):04d}.{ent.format}"
    if ent.format == "jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    else:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        path.write_text(out.getvalue(), encoding="utf-8")
    return path
