"""Raw landing tables of the `crm` source system (SPEC section 4)."""

from .raw import source_assets

assets = source_assets("crm")
