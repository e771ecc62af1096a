"""The program rules file, validated and written to the warehouse schema `rules` on every run."""

from __future__ import annotations

from dagster import AssetExecutionContext, MaterializeResult, asset

from referral_pipeline.rules import load_rules, write_rules
from referral_pipeline.warehouse import connect

from ..partitions import daily_partitions, single_run_backfill
from ..resources import PipelineResource


@asset(
    name="program_rules",
    group_name="rules",
    partitions_def=daily_partitions,
    kinds={"python", "postgres"},
    backfill_policy=single_run_backfill,
    description="The program rules YAML (SPEC section 7), validated and loaded into rules.* for dbt.",
)
def program_rules(context: AssetExecutionContext, pipeline: PipelineResource) -> MaterializeResult:
    rules = load_rules(pipeline.settings.rules_file)
    with connect(pipeline.url) as conn:
        write_rules(conn, rules)
    context.log.info(f"rules {rules.source_file}: {len(rules.versions)} version(s), sha256 {rules.sha256[:12]}")
    return MaterializeResult(
        metadata={
            "rules_file": rules.source_file,
            "rules_sha256": rules.sha256,
            "versions": ", ".join(v.version_id for v in rules.versions),
        }
    )


assets = [program_rules]
