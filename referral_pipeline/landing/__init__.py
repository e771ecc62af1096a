"""The landing-zone loader (see docs/rules.md, Inputs): source export files -> raw tables, one partition at a
time."""

from .loader import LoadResult, load_partition
from .storage import LandingError, check_landing_root

__all__ = ["LandingError", "LoadResult", "check_landing_root", "load_partition"]
