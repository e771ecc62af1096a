"""Assets of the data-driven step (not yet implemented: defines none)."""

assets: list = []
