"""The one Definitions object: `dagster dev -w workspace.yaml` loads it."""

from dagster import Definitions

from .assets import crm, data_driven, dbt, finance, links, marketing, payouts, report, rules
from .dbt_project import ReferralDbtCliResource, dbt_executable
from .jobs import audit_job, nightly_job
from .resources import PipelineResource
from .schedules import data_audit_schedule, nightly_schedule

defs = Definitions(
    assets=[
        *crm.assets,
        *marketing.assets,
        *links.assets,
        *finance.assets,
        *rules.assets,
        *dbt.assets,
        *payouts.assets,
        *data_driven.assets,
        *report.assets,
    ],
    asset_checks=[*payouts.checks],
    jobs=[nightly_job, audit_job, payouts.payout_batch_job],
    schedules=[nightly_schedule, data_audit_schedule],
    resources={
        "pipeline": PipelineResource(),
        "dbt": ReferralDbtCliResource(project_dir=dbt.project, dbt_executable=dbt_executable()),
    },
)
