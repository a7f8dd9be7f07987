"""Example apps for taskstore-worker."""
