"""Assets of the report step (not yet implemented: defines none)."""

assets: list = []
