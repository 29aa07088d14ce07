"""core.results."""
