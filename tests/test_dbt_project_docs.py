"""Every dbt model is documented (model and columns) and tested (a data test or a unit test)."""

import json

from orchestration.dbt_project import ensure_manifest


def test_every_model_is_documented_and_tested():
    manifest = json.loads(ensure_manifest().read_text())
    models = {k: v for k, v in manifest["nodes"].items() if v["resource_type"] == "model"}
    tested = {
        d
        for v in manifest["nodes"].values()
        if v["resource_type"] == "test"
        for d in v["depends_on"]["nodes"]
    }
    tested |= {d for v in manifest.get("unit_tests", {}).values() for d in v["depends_on"]["nodes"]}
    problems = []
    for unique_id, model in sorted(models.items()):
        if not model["description"].strip():
            problems.append(f"{model['name']}: no description")
        if not model["columns"]:
            problems.append(f"{model['name']}: no documented columns")
        problems += [
            f"{model['name']}.{c}: no description"
            for c, col in model["columns"].items()
            if not col.get("description")
        ]
        if unique_id not in tested:
            problems.append(f"{model['name']}: no data test or unit test")
    assert len(models) >= 40
    assert not problems, "\n".join(problems)


def test_marts_state_their_grain():
    manifest = json.loads(ensure_manifest().read_text())
    marts = [
        v for v in manifest["nodes"].values() if v["resource_type"] == "model" and v["schema"] == "marts"
    ]
    names = {m["name"] for m in marts}
    assert {
        "dim_partners",
        "fct_touchpoints",
        "fct_attribution",
        "fct_referrals",
        "fct_partner_performance_monthly",
        "fct_reward_events",
        "fct_payout_ledger",
        "fct_data_quality",
    } <= names
    assert not [m["name"] for m in marts if "grain" not in m["description"].lower()]
