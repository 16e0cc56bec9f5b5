"""`python -m forecaster <command> [hydra overrides...]`.

Hydra would read a bare `train` as a malformed override, so the subcommand is taken off argv
here, before Hydra parses the rest.
"""

from __future__ import annotations

import sys

COMMANDS = ("train", "backtest", "predict")
USAGE = """usage: python -m forecaster <command> [overrides...]

commands:
  train     train on a price CSV and log the run to MLflow  (e.g. window.horizon=20)
  backtest  walk the model and the baselines forward through the last years, on the same
            origins, with significance tests               (e.g. backtest.refit_every=250)
  predict   forecast the next prices with a logged model     (run_id=<id> [warm_start=true])

Hydra flags work after the command: --help, --cfg job, -m (multirun)."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(USAGE, file=sys.stderr)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nerror: unknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
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


if __name__ == "__main__":
    sys.exit(main())
