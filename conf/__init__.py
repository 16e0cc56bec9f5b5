"""Hydra's config groups, shipped in the package as `forecaster.conf` (see pyproject.toml)."""
