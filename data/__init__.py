"""Bundled price data, shipped in the package as `forecaster.datasets`; see README.md here."""
