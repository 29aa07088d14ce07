"""core.models."""
