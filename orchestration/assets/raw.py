"""The factory for raw landing-table assets: one asset per source entity, loading partition `dt=D`."""

from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, MetadataValue, asset

from referral_pipeline.entities import ENTITIES, Entity
from referral_pipeline.landing import load_partition

from ..partitions import daily_partitions, run_days, single_run_backfill
from ..resources import PipelineResource


def raw_asset(entity: Entity) -> AssetsDefinition:
    @asset(
        name=entity.asset_name,
        group_name=entity.source,
        partitions_def=daily_partitions,
        kinds={"python", "postgres"},
        description=(
            f"raw.{entity.table}: `{entity.path}` exports ({entity.kind}, {entity.format}) loaded from the "
            f"landing partition dt=D with COPY, atomically; a reload replaces the partition."
        ),
        pool="landing",
        backfill_policy=single_run_backfill,
    )
    def _load(context: AssetExecutionContext, pipeline: PipelineResource) -> MaterializeResult:
        settings = pipeline.settings
        loaded = rejected = 0
        files: list[str] = []
        for day in run_days(context):
            result = load_partition(
                pipeline.url,
                entity,
                day,
                settings.landing_uri,
                ip_hash_key=settings.ip_hash_key,
                log=context.log.debug,
            )
            context.log.info(
                f"{entity.path} dt={day}: {result.rows_loaded} rows loaded, {result.rows_rejected} rejected "
                f"from {len(result.files)} file(s)"
            )
            loaded += result.rows_loaded
            rejected += result.rows_rejected
            files += result.files
        return MaterializeResult(
            metadata={"rows_loaded": loaded, "rows_rejected": rejected, "files": MetadataValue.json(files)}
        )

    return _load


def source_assets(source: str) -> list[AssetsDefinition]:
    return [raw_asset(e) for e in ENTITIES if e.source == source]
