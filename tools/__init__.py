"""Developer tools for spotmap (never deployed)."""
