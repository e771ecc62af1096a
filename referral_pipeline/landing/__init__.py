"""The landing-zone loader (SPEC section 4): source export files -> raw tables, one partition at a time."""

from .loader import LandingError, LoadResult, load_partition

__all__ = ["LandingError", "LoadResult", "load_partition"]
