"""eval/baselines."""
