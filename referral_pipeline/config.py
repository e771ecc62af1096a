"""Configuration: the environment variables of SPEC section 2, read when asked (never at import time)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RULES_FILE = Path(__file__).resolve().parent / "default_rules.yml"
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"

# Documented default key for the embedded/demo setup. Production sets REFERRAL_IP_HASH_KEY.
DEFAULT_IP_HASH_KEY = "referral-pipeline-default-ip-hash-key"


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
        data_dir = Path(env.get("REFERRAL_DATA_DIR") or PROJECT_ROOT / ".data").expanduser().resolve()
        return cls(
            warehouse_url=env.get("REFERRAL_WAREHOUSE_URL") or None,
            landing_uri=env.get("REFERRAL_LANDING_URI") or str(data_dir / "landing"),
            export_uri=env.get("REFERRAL_EXPORT_URI") or str(data_dir / "exports"),
            rules_file=Path(env.get("REFERRAL_RULES_FILE") or DEFAULT_RULES_FILE).expanduser(),
            data_dir=data_dir,
            ip_hash_key=env.get("REFERRAL_IP_HASH_KEY") or DEFAULT_IP_HASH_KEY,
        )
