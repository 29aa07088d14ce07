"""core.jobs."""
