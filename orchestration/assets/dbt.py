"""Every dbt model as a Dagster asset (dbt tests as asset checks), built by one `dbt build` per run."""

import os
from collections.abc import Mapping
from typing import Any

import psycopg
from dagster import AssetExecutionContext, Failure
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from referral_pipeline.dbt_cli import build_args, dbt_env
from referral_pipeline.warehouse import DBT_LOCK, advisory_lock

from ..dbt_project import dbt_project
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
    """`dbt build` of the selected models with the run date in the environment. One dbt invocation at a time per
    warehouse (advisory lock)."""
    url = pipeline.url
    os.environ.update(dbt_env(url, run_date(context)))
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
    """The views over the payout ledger (and their tests), after the payout step."""
    yield from _build(context, dbt, pipeline)


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
