"""Raw landing tables of the `links` source system (see docs/rules.md, Inputs)."""

from .raw import source_assets

assets = source_assets("links")
