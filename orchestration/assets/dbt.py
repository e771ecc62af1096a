"""Every dbt model as a Dagster asset (dbt tests as asset checks), built by one `dbt build` per run.

Which data tests the nightly runs: the ones that guard what the payout step reads (`blocks_publishing`); every
other data test is a full-history invariant, run by the `data_audit` job (see orchestration/jobs.py)."""

import dataclasses
import json
import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
from dagster import AssetCheckKey, AssetExecutionContext, Failure, MaterializeResult
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets
from psycopg import sql

from payout_exports.ledger import Inputs
from referral_pipeline.dbt_cli import build_args, dbt_env
from referral_pipeline.warehouse import DBT_LOCK, advisory_lock

from ..dbt_project import dbt_project, project_fingerprint
from ..partitions import daily_partitions, run_date, single_run_backfill
from ..resources import PipelineResource


class ReferralDbtTranslator(DagsterDbtTranslator):
    """Groups models by their layer folder (staging, intermediate, marts)."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn") or []
        if dbt_resource_props.get("resource_type") == "model" and len(fqn) >= 3:
            return fqn[1]
        return super().get_group_name(dbt_resource_props)


translator = ReferralDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))
project = dbt_project()


# The views over the payout ledger: they read what the payout step writes (the dbt sources `payouts.*`, which are
# that step's assets), so they are built and tested after it, by a second, small dbt step; everything else is
# built before it, by the first. The payout step reads marts.fct_reward_entitlements, never these views.
LEDGER_VIEWS = "fct_reward_events fct_payout_ledger"


def _build(context: AssetExecutionContext, dbt: DbtCliResource, pipeline: PipelineResource):
    """`dbt build` of the selected models and tests with the run date in the environment (Dagster passes the
    selection: in the nightly, the models and the tests that block publishing). One dbt invocation at a time per
    warehouse (advisory lock)."""
    url = pipeline.url
    os.environ.update(
        dbt_env(
            url, run_date(context) if context.has_partition_key or context.has_partition_key_range else None
        )
    )
    with advisory_lock(url, DBT_LOCK):
        invocation = dbt.cli(
            build_args(),
            context=context,
            raise_on_error=False,
            target_path=project.target_path,
        )
        yield from invocation.stream()
    if not invocation.is_successful():
        raise Failure(description=dbt_failure_summary(invocation.get_artifact("run_results.json"), url))


# What the two dbt steps share; they differ only in their selection and name.
_DBT_STEP = {
    "manifest": project.manifest_path,
    "project": project,
    "partitions_def": daily_partitions,
    "dagster_dbt_translator": translator,
    "pool": "dbt",
    "backfill_policy": single_run_backfill,
}


@dbt_assets(**_DBT_STEP, exclude=LEDGER_VIEWS, name="dbt_models")
def dbt_models(context: AssetExecutionContext, dbt: DbtCliResource, pipeline: PipelineResource):
    """Every model but the ledger views (and their tests), before the payout step."""
    yield from _build(context, dbt, pipeline)


@dbt_assets(**_DBT_STEP, select=LEDGER_VIEWS, name="dbt_ledger_views")
def dbt_ledger_views(context: AssetExecutionContext, dbt: DbtCliResource, pipeline: PipelineResource):
    """The views over the payout ledger, after the payout step. A view shows the ledger as it is whenever it is
    read, so it is (re)created only when it is missing or the dbt project changed since it was created; the
    nightly then runs no second dbt invocation. Their tests run in the data_audit job."""
    views = [k.path[-1] for k in context.selected_asset_keys]
    stamp = _views_stamp()
    if views and not context.selected_asset_check_keys and _views_current(pipeline.url, views, stamp):
        # Materialized all the same (not rebuilt): each view shows this run's ledger, and what reads it after
        # the payout step (the report) runs on it.
        for key in context.selected_asset_keys:
            yield MaterializeResult(asset_key=key, metadata={"rebuilt": False, "definition": stamp})
        return
    yield from _build(context, dbt, pipeline)
    if views:
        _stamp_views(pipeline.url, views, stamp)


def _views_stamp() -> str:
    return "built from dbt project " + project_fingerprint(Path(project.project_dir))


def _views_current(url: str, views: list[str], stamp: str) -> bool:
    with psycopg.connect(url) as conn:
        comments = conn.execute(
            "select obj_description(to_regclass(v), 'pg_class') from unnest(%s::text[]) as v",
            [[f"marts.{v}" for v in views]],
        ).fetchall()
    return all(c == stamp for (c,) in comments)


def _stamp_views(url: str, views: list[str], stamp: str) -> None:
    with psycopg.connect(url) as conn:
        for v in views:
            conn.execute(
                sql.SQL("comment on view marts.{} is {}").format(sql.Identifier(v), sql.Literal(stamp))
            )


# --- which data tests the nightly runs ---------------------------------------------------------------------


def payout_input_models() -> frozenset[str]:
    """The dbt models the payout step reads (the relations of payout_exports.ledger.Inputs)."""
    relations = [getattr(Inputs(), f.name) for f in dataclasses.fields(Inputs)]
    return frozenset(r.split(".")[-1] for r in relations if isinstance(r, str) and "." in r)


def blocks_publishing(test: Mapping[str, Any], payout_inputs: frozenset[str]) -> bool:
    """A data test the nightly runs before the payout step, so that its failure stops publishing: every test
    of a model the payout step reads, and every singular test (dbt_project/tests: cross-model rules such as
    credits summing to one, an fx rate for every deal) but those over the ledger views, which read what the
    payout step writes. Every other test (not_null, unique, accepted values and relationships over all history
    of the other models) runs in the data_audit job."""
    if test.get("test_metadata"):  # a generic test, on the model it is attached to
        return (test.get("attached_node") or "").split(".")[-1] in payout_inputs
    parents = {n.split(".")[-1] for n in test.get("depends_on", {}).get("nodes", [])}
    return not parents & set(LEDGER_VIEWS.split())


@cache
def _tests_by_name() -> dict[str, Mapping[str, Any]]:
    manifest = json.loads(Path(project.manifest_path).read_text())
    return {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "test"}


def audit_check_keys() -> list[AssetCheckKey]:
    """The dbt tests (as asset checks) that the data_audit job runs instead of the nightly."""
    tests, inputs = _tests_by_name(), payout_input_models()
    keys = [*dbt_models.check_keys, *dbt_ledger_views.check_keys]
    return sorted((k for k in keys if not blocks_publishing(tests[k.name], inputs)), key=str)


def dbt_failure_summary(run_results: Mapping[str, Any], url: str) -> str:
    """One line naming what failed in a dbt build, with the stored failing rows' `message` when a test keeps
    one (e.g. a missing fx rate: what to load). Nothing downstream of a failure is built or published."""
    parts = []
    for r in run_results.get("results", []):
        if r.get("status") not in ("error", "fail", "runtime error"):
            continue
        name = r.get("unique_id", "?.?.?").split(".")[2]
        detail = (r.get("message") or "").strip().splitlines()
        messages = _stored_messages(url, r.get("relation_name"))
        parts.append(
            f"{name}: {'; '.join(messages) if messages else (detail[0] if detail else r.get('status'))}"
        )
    if not parts:
        return "dbt build failed; see the dbt log above"
    return "dbt build failed, nothing downstream was built or published: " + " | ".join(parts)


def _stored_messages(url: str, relation: str | None, limit: int = 3) -> list[str]:
    if not relation:
        return []
    try:
        with psycopg.connect(url) as conn:
            rows = conn.execute(f"select message from {relation} order by 1 limit {limit + 1}").fetchall()
    except psycopg.Error:
        return []
    out = [str(m) for (m,) in rows[:limit]]
    return out + ["..."] if len(rows) > limit else out


assets = [dbt_models, dbt_ledger_views]
