"""Raw landing tables of the `crm` source system (see docs/rules.md, Inputs)."""

from .raw import source_assets

assets = source_assets("crm")
