"""core.training."""
