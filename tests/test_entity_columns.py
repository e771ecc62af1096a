"""The landing contract (referral_pipeline.entities) is the one description of each source entity's columns; the
raw tables are generated from it. The dbt project names those columns again where it reads them (each staging
model's select list and docs, and the incremental clicks model): these tests prove every copy agrees with the
contract, so adding or renaming a column fails here until every reader follows."""

from __future__ import annotations

import json
import re

import pytest

from orchestration.dbt_project import ensure_manifest
from referral_pipeline.entities import ENTITIES

LINEAGE = ("_partition_date", "_source_file", "_line_number", "_loaded_at")


@pytest.fixture(scope="module")
def models() -> dict[str, dict]:
    manifest = json.loads(ensure_manifest().read_text())
    return {v["name"]: v for v in manifest["nodes"].values() if v["resource_type"] == "model"}


def _select_list(sql: str, cte: str) -> list[str]:
    """The column names of `cte as [not materialized] ( select a, b, ... from ...)` in a model's SQL, in order."""
    body = re.search(rf"\b{cte} as (?:not materialized )?\(\s*select\s+(.*?)\s+from\b", sql, re.S)
    assert body, f"no `{cte} as (select ... from` in the model"
    return [c.strip().split()[-1] for c in body.group(1).split(",")]


@pytest.mark.parametrize("entity", ENTITIES, ids=lambda e: e.table)
def test_each_staging_model_selects_and_documents_the_contract_columns(entity, models):
    model = models[f"stg_{entity.source}__{entity.name}"]
    contract = [c.column_name for c in entity.columns]
    selected = _select_list(model["raw_code"], "renamed")
    assert selected == contract + list(LINEAGE), (
        f"{model['name']} selects {selected}, the contract has {contract}"
    )
    documented = set(model["columns"])
    assert set(contract) <= documented, f"{model['name']}: undocumented {sorted(set(contract) - documented)}"


def test_the_incremental_clicks_model_reads_the_contract_columns(models):
    clicks = next(e for e in ENTITIES if e.table == "links__clicks")
    contract = [c.column_name for c in clicks.columns]
    sql = models["int_touchpoints__clicks"]["raw_code"]
    assert _select_list(sql, "raw_clicks") == contract + [*LINEAGE[:3], "_load_batch_id", "_loaded_at"]
    final = sql.rsplit("from first_occurrences", 1)[0].rsplit("select", 1)[1]
    assert [c.strip() for c in final.split(",")] == [
        *contract,
        *LINEAGE[:3],
        "_load_batch_id",
        "_loaded_at",
    ]
