"""The entry points: thin Hydra commands that compose the layers below (`python -m forecaster`)."""
