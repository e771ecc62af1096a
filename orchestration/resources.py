"""Resources. Configuration comes from the environment (SPEC section 2) when the resource is used, never at
import time; fields set on the resource override the environment."""

from __future__ import annotations

from dataclasses import replace
from functools import cached_property
from pathlib import Path

from dagster import ConfigurableResource

from referral_pipeline.config import Settings
from referral_pipeline.warehouse import prepare


class PipelineResource(ConfigurableResource):
    """Where the warehouse, landing zone, exports and rules are. Empty fields fall back to the environment."""

    warehouse_url: str | None = None
    landing_uri: str | None = None
    export_uri: str | None = None
    rules_file: str | None = None

    @cached_property
    def settings(self) -> Settings:
        s = Settings.from_env()
        overrides = {
            "warehouse_url": self.warehouse_url,
            "landing_uri": self.landing_uri,
            "export_uri": self.export_uri,
            "rules_file": Path(self.rules_file) if self.rules_file else None,
        }
        return replace(s, **{k: v for k, v in overrides.items() if v})

    @cached_property
    def url(self) -> str:
        """The warehouse URL (starting the embedded server if needed), with schemas created."""
        return prepare(self.settings)
