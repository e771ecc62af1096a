"""The factory for raw landing-table assets: one asset per source entity, loading partition `dt=D`.

Each raw asset carries two asset checks, evaluated from what the load just did (they run in the asset's step
and show on the asset in the UI; both only warn, so they never stop the run):

- `rows_loaded`: every partition of the run loaded at least one row. A partition with no rows is legitimate
  (some sources export nothing on quiet days) but worth a look, so it is a warning.
- `rejected_share`: no partition of the run rejected more than `REJECTED_SHARE_WARN` of its rows (rejected /
  (loaded + rejected)); the rejected rows are in `raw.rejected_rows`.
"""

import datetime as dt

from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from referral_pipeline.entities import ENTITIES, Entity
from referral_pipeline.landing import load_partition

from ..partitions import daily_partitions, run_days, single_run_backfill
from ..resources import PipelineResource

ROWS_LOADED_CHECK = "rows_loaded"
REJECTED_SHARE_CHECK = "rejected_share"
REJECTED_SHARE_WARN = 0.05  # warn above 5% of a partition's rows rejected


def raw_check_specs(entity: Entity) -> list[AssetCheckSpec]:
    key = AssetKey(entity.asset_name)
    return [
        AssetCheckSpec(
            ROWS_LOADED_CHECK,
            asset=key,
            description=(
                "Every partition of the run loaded at least one row; warns (never fails the run) when a "
                "partition loaded none, e.g. a missing or empty landing partition."
            ),
        ),
        AssetCheckSpec(
            REJECTED_SHARE_CHECK,
            asset=key,
            description=(
                f"No partition of the run rejected more than {REJECTED_SHARE_WARN:.0%} of its rows "
                "(rejected / (loaded + rejected)); warns otherwise. Rejected rows and their reasons are in "
                "raw.rejected_rows."
            ),
        ),
    ]


def _days(days: list[dt.date]) -> str:
    shown = ", ".join(f"dt={d.isoformat()}" for d in days[:10])
    return shown + (f" and {len(days) - 10} more" if len(days) > 10 else "")


def check_results(
    asset_key: AssetKey, counts: dict[dt.date, tuple[int, int]], threshold: float = REJECTED_SHARE_WARN
) -> list[AssetCheckResult]:
    """The two raw-table checks for the partitions of one run: `counts` maps each day to (loaded, rejected)."""
    empty = [d for d, (loaded, _) in counts.items() if loaded == 0]
    rows_loaded = AssetCheckResult(
        asset_key=asset_key,
        check_name=ROWS_LOADED_CHECK,
        passed=not empty,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "partitions": len(counts),
            "empty_partitions": MetadataValue.json([d.isoformat() for d in empty]),
            "rows_loaded": sum(loaded for loaded, _ in counts.values()),
        },
        description=(
            f"{len(empty)} of {len(counts)} partition(s) loaded zero rows: {_days(empty)}"
            if empty
            else f"every partition ({len(counts)}) loaded at least one row"
        ),
    )

    def share(loaded: int, rejected: int) -> float:
        return rejected / (loaded + rejected) if loaded + rejected else 0.0

    over = {d: share(*c) for d, c in counts.items() if share(*c) > threshold}
    loaded_total = sum(loaded for loaded, _ in counts.values())
    rejected_total = sum(rejected for _, rejected in counts.values())
    worst = max((share(*c) for c in counts.values()), default=0.0)
    rejected_share = AssetCheckResult(
        asset_key=asset_key,
        check_name=REJECTED_SHARE_CHECK,
        passed=not over,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "threshold": threshold,
            "rejected_share": round(share(loaded_total, rejected_total), 6),
            "max_partition_share": round(worst, 6),
            "rows_rejected": rejected_total,
            "partitions_over_threshold": MetadataValue.json(
                {d.isoformat(): round(s, 6) for d, s in over.items()}
            ),
        },
        description=(
            f"{len(over)} partition(s) rejected more than {threshold:.0%} of their rows: "
            + ", ".join(f"dt={d.isoformat()} {s:.1%}" for d, s in list(over.items())[:10])
            + (f" and {len(over) - 10} more" if len(over) > 10 else "")
            + " (see raw.rejected_rows)"
            if over
            else f"{rejected_total} of {loaded_total + rejected_total} rows rejected; no partition above {threshold:.0%}"
        ),
    )
    return [rows_loaded, rejected_share]


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
        check_specs=raw_check_specs(entity),
    )
    def _load(context: AssetExecutionContext, pipeline: PipelineResource) -> MaterializeResult:
        settings = pipeline.settings
        loaded = rejected = 0
        files: list[str] = []
        counts: dict[dt.date, tuple[int, int]] = {}
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
            counts[day] = (result.rows_loaded, result.rows_rejected)
        selected = context.selected_asset_check_keys
        checks = [
            r
            for r in check_results(context.asset_key, counts)
            if AssetCheckKey(context.asset_key, r.check_name) in selected
        ]
        return MaterializeResult(
            metadata={"rows_loaded": loaded, "rows_rejected": rejected, "files": MetadataValue.json(files)},
            check_results=checks,
        )

    return _load


def source_assets(source: str) -> list[AssetsDefinition]:
    return [raw_asset(e) for e in ENTITIES if e.source == source]
