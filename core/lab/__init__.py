"""core.lab."""
