"""Every dbt model as a Dagster asset (dbt tests as asset checks), built by one `dbt build` per run."""

import os
from collections.abc import Mapping
from typing import Any

from dagster import AssetExecutionContext
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


@dbt_assets(
    manifest=project.manifest_path,
    project=project,
    partitions_def=daily_partitions,
    dagster_dbt_translator=translator,
    name="dbt_models",
    pool="dbt",
    backfill_policy=single_run_backfill,
)
def dbt_models(context: AssetExecutionContext, dbt: DbtCliResource, pipeline: PipelineResource):
    """`dbt build` with the run date as a var. One dbt invocation at a time per warehouse (advisory lock)."""
    url = pipeline.url
    os.environ.update(dbt_env(url))
    with advisory_lock(url, DBT_LOCK):
        yield from dbt.cli(build_args(run_date(context)), context=context).stream()


assets = [dbt_models]
