"""Resources. Configuration comes from the `REFERRAL_*` environment variables when a run starts, never at
import time; fields set on the resource override the environment."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from referral_pipeline.config import Settings
from referral_pipeline.warehouse import prepare


class PipelineResource(ConfigurableResource):
    """Where the warehouse, landing zone, exports and rules are. Empty fields fall back to the environment."""

    warehouse_url: str | None = None
    landing_uri: str | None = None
    export_uri: str | None = None
    rules_file: str | None = None

    _settings: Settings | None = PrivateAttr(default=None)
    _url: str | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        # Resolved afresh for every run, so a changed environment is honoured by the next run.
        self._settings = None
        self._url = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            s = Settings.from_env()
            overrides = {
                "warehouse_url": self.warehouse_url,
                "landing_uri": self.landing_uri,
                "export_uri": self.export_uri,
                "rules_file": Path(self.rules_file) if self.rules_file else None,
            }
            settings = replace(s, **{k: v for k, v in overrides.items() if v})
            settings.check_ip_hash_key()
            self._settings = settings
        return self._settings

    @property
    def url(self) -> str:
        """The warehouse URL (starting the embedded server if needed), with schemas created."""
        if self._url is None:
            self._url = prepare(self.settings)
        return self._url
