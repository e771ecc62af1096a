"""The program rules file, validated and written to the warehouse schema `rules` on every run: one asset per
rules table (the dbt sources `rules.*` depend on them)."""

from dagster import AssetExecutionContext, AssetKey, AssetSpec, MaterializeResult, multi_asset

from referral_pipeline.rules import load_rules, write_rules
from referral_pipeline.warehouse import connect

from ..partitions import daily_partitions, single_run_backfill
from ..resources import PipelineResource

RULES_TABLES = ("program", "versions", "tiers", "free_mail_domains")


@multi_asset(
    name="program_rules",
    specs=[
        AssetSpec(
            AssetKey(["rules", t]),
            group_name="rules",
            kinds={"python", "postgres"},
            partitions_def=daily_partitions,
            description=f"rules.{t}: from the program rules YAML (REFERRAL_RULES_FILE), validated on load.",
        )
        for t in RULES_TABLES
    ],
    backfill_policy=single_run_backfill,
)
def program_rules(context: AssetExecutionContext, pipeline: PipelineResource):
    rules = load_rules(pipeline.settings.rules_file)
    with connect(pipeline.url) as conn:
        write_rules(conn, rules)
    context.log.info(
        f"rules {rules.source_file}: {len(rules.versions)} version(s), sha256 {rules.sha256[:12]}"
    )
    for t in RULES_TABLES:
        yield MaterializeResult(
            asset_key=AssetKey(["rules", t]),
            metadata={"rules_file": rules.source_file, "rules_sha256": rules.sha256},
        )


assets = [program_rules]
