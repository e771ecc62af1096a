"""Configuration: the `REFERRAL_*` environment variables, read when asked (never at import time)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_RULES_FILE = _PACKAGE_DIR / "default_rules.yml"


def _dbt_project_dir() -> Path:
    """The dbt project: shipped inside the installed package (`referral_pipeline/dbt_project` in a wheel), or
    the checkout's top-level `dbt_project/` when the package runs from a source tree (editable install)."""
    packaged = _PACKAGE_DIR / "dbt_project"
    return packaged if (packaged / "dbt_project.yml").is_file() else _PACKAGE_DIR.parent / "dbt_project"


# Read-only: nothing is ever written here (dbt's target and logs go under the data folder).
DBT_PROJECT_DIR = _dbt_project_dir()

# Documented default key for the embedded/demo setup. A configured external warehouse refuses it.
DEFAULT_IP_HASH_KEY = "referral-pipeline-default-ip-hash-key"
DEFAULT_DATA_DIR = ".referral"  # relative to the working directory


class ConfigError(ValueError):
    """A setting is wrong; the message names the setting and what to do."""


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. `warehouse_url` is None when the embedded server is to be used."""

    warehouse_url: str | None
    landing_uri: str
    export_uri: str
    rules_file: Path
    data_dir: Path
    ip_hash_key: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("REFERRAL_DATA_DIR") or DEFAULT_DATA_DIR).expanduser().resolve()
        return cls(
            warehouse_url=env.get("REFERRAL_WAREHOUSE_URL") or None,
            landing_uri=env.get("REFERRAL_LANDING_URI") or str(data_dir / "landing"),
            export_uri=env.get("REFERRAL_EXPORT_URI") or str(data_dir / "exports"),
            rules_file=Path(env.get("REFERRAL_RULES_FILE") or DEFAULT_RULES_FILE).expanduser(),
            data_dir=data_dir,
            ip_hash_key=env.get("REFERRAL_IP_HASH_KEY") or DEFAULT_IP_HASH_KEY,
        )

    @property
    def dbt_target_dir(self) -> Path:
        """dbt's artifacts (manifest, run results, partial-parse state) and its log: one folder, reused by
        every run, so it stays the size of one run's artifacts."""
        return self.data_dir / "dbt" / "target"

    @property
    def dagster_home(self) -> Path:
        """The Dagster instance the CLI runs and the UI share (unless DAGSTER_HOME is set)."""
        return self.data_dir / "dagster_home"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    def check_ip_hash_key(self) -> None:
        """An external warehouse holds real data: the documented default key would make its IP hashes
        reversible by anyone who read the docs."""
        if self.warehouse_url and self.ip_hash_key == DEFAULT_IP_HASH_KEY:
            raise ConfigError(
                "REFERRAL_IP_HASH_KEY is not set: an external warehouse (REFERRAL_WAREHOUSE_URL) needs a secret key "
                "of its own, e.g. export REFERRAL_IP_HASH_KEY=$(openssl rand -hex 32), kept the same for every run"
            )
