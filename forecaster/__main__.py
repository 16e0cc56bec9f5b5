"""`forecaster <command> [hydra overrides...]` (also `python -m forecaster ...`).

Hydra would read a bare `train` as a malformed override, so the subcommand is taken off argv
here, before Hydra parses the rest; so are `-h`/`--help` (the command's keys, generated from the
config schema: `forecaster.cli.help`) and `-v` (library log lines too). By default the terminal
shows the run's own lines: TensorFlow's C++ and Python logs (set in `forecaster/__init__.py`)
and MLflow's INFO lines are kept back.
"""

from __future__ import annotations

import logging
import os
import sys

COMMANDS = ("train", "backtest", "predict")
USAGE = """usage: forecaster <command> [overrides...] [-v]     (or python -m forecaster ...)

commands:
  train     train on a price CSV and log the run to MLflow  (e.g. window.horizon=20)
  backtest  walk the model and the baselines forward through the last years, on the same
            origins, with significance tests               (e.g. backtest.refit_every=250)
  predict   forecast the next prices with a logged model     (run_id=<id> [warm_start=true])

`forecaster <command> --help` lists the command's config groups and keys with their defaults.
-v shows the libraries' log lines too (TensorFlow, MLflow); Hydra flags work after the command:
--cfg job, -m (multirun), --hydra-help."""
VERBOSE_FLAGS = ("-v", "--verbose")


def quiet_libraries(verbose: bool) -> None:
    """Keep library chatter off the terminal unless `verbose` (must run before they load)."""
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "INFO")
        logging.getLogger("tensorflow").setLevel(logging.INFO)
    else:
        # MLflow's INFO and WARNING lines (creating a store's tables, validating an input
        # example, how a model is serialised): errors still show.
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(USAGE, file=sys.stderr)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nerror: unknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if "-h" in rest or "--help" in rest:
        from forecaster.cli.help import command_help

        print(command_help(command))
        return 0
    verbose = any(flag in rest for flag in VERBOSE_FLAGS)
    rest = [arg for arg in rest if arg not in VERBOSE_FLAGS]
    quiet_libraries(verbose or "hydra.verbose=true" in rest)
    from forecaster.cli.signals import exit_status
    from forecaster.errors import TrainingInterrupted

    if command == "predict":
        from forecaster.cli.predict import main as hydra_main
    elif command == "backtest":
        from forecaster.cli.backtest import main as hydra_main
    else:
        from forecaster.cli.train import main as hydra_main

    sys.argv = [f"{sys.argv[0]} {command}", *rest]
    try:
        hydra_main()
    except TrainingInterrupted as stopped:  # already logged, and the run ended KILLED
        return exit_status(stopped)
    return 0


def cli() -> None:
    """The `forecaster` console script."""
    sys.exit(main())


if __name__ == "__main__":
    cli()
