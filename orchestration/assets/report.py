"""The program report (see docs/report.md): written by the nightly job after dbt and the payout step, into the
data folder's `reports/`, and linked from the asset's materialization in the UI."""

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from referral_pipeline.report import write_report
from referral_pipeline.warehouse import connect

from ..partitions import daily_partitions, single_run_backfill
from ..resources import PipelineResource

# The marts the report reads (dbt asset keys are [schema, model]), the published payout batches and the
# data-driven attribution tables.
UPSTREAM = [
    AssetKey(["marts", "fct_partner_performance_monthly"]),
    AssetKey(["marts", "fct_attribution"]),
    AssetKey(["marts", "fct_payout_ledger"]),
    AssetKey(["marts", "fct_data_quality"]),
    AssetKey(["marts", "fct_touchpoints"]),
    AssetKey(["marts", "dim_partners"]),
    AssetKey(["payout_files"]),
    # The data-driven fit (asset data_driven_attribution), so the report shows the fit of the same run.
    AssetKey(["marts", "fct_attribution_data_driven"]),
    AssetKey(["marts", "dim_partner_weights_data_driven"]),
]


@asset(
    name="program_report",
    group_name="report",
    partitions_def=daily_partitions,
    deps=UPSTREAM,
    kinds={"python", "html"},
    description=(
        "The program report: one self-contained HTML file (partner performance, attributed revenue per model, "
        "payouts, data quality) and its charts as PNG, written to the data folder's reports/ from the marts."
    ),
    backfill_policy=single_run_backfill,
)
def program_report(context: AssetExecutionContext, pipeline: PipelineResource) -> MaterializeResult:
    out = pipeline.settings.data_dir / "reports"
    with connect(pipeline.url) as conn:
        files = write_report(conn, out)
    context.log.info(f"program report written to {files.html}")
    return MaterializeResult(
        metadata={
            "report": MetadataValue.url(files.html.resolve().as_uri()),
            "path": MetadataValue.path(str(files.html)),
            "charts": MetadataValue.json([str(p) for p in files.pngs]),
            "as_of": MetadataValue.text(files.as_of.isoformat() if files.as_of else "no run yet"),
        }
    )


assets = [program_report]
