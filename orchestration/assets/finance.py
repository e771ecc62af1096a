"""Raw landing tables of the `finance` source system (see docs/rules.md, Inputs)."""

from .raw import source_assets

assets = source_assets("finance")
