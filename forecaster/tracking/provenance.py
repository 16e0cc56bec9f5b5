"""Where a run came from: code version, library versions, command line (recorded as run tags;
plain Python, no MLflow)."""

from __future__ import annotations

import importlib.metadata
import shlex
import subprocess
import sys
from pathlib import Path

import forecaster
from forecaster.paths import source_checkout

LIBRARIES = ("tensorflow-cpu", "tensorflow", "numpy", "pandas", "hydra-core", "mlflow")


def git_state(root: Path | None = None) -> tuple[str, bool | None]:
    """(commit, dirty) of the checkout holding the code; ("unknown", None) for an installed
    package or outside git."""
    root = root or source_checkout()
    if root is None:
        return "unknown", None

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        # Untracked files don't change what ran; modified tracked files do.
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return "unknown", None
    return commit, dirty


def library_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "forecaster": forecaster.__version__}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


# What is done with a model after its run (refit, registration) does not tell runs apart.
DEPLOYMENT_KEYS = ("train.refit_full", "train.register_as", "train.register_alias")


def shown_overrides(overrides: list[str], common: list[str] = ()) -> list[str]:
    """The overrides that tell a run apart, for its name: not where it logs (`tracking.*`),
    not Hydra's own (`hydra.*`), not what is done with the model after (`DEPLOYMENT_KEYS`), and
    not those it shares with its whole sweep (`common`, the sweep command's overrides, where the
    last one for a key is the one that counts)."""

    def key(override: str) -> str:
        return override.split("=", 1)[0].lstrip("+~")

    swept_as = {key(o): o for o in common}
    return [
        o
        for o in overrides
        if swept_as.get(key(o)) != o
        and not key(o).startswith(("tracking.", "hydra."))
        and key(o) not in DEPLOYMENT_KEYS
    ]


def replay_command(command: str, overrides: list[str]) -> str:
    """The command that reruns a job: its own overrides, not the sweep's comma lists."""
    return shlex.join(["python", "-m", "forecaster", command, *overrides])


def run_tags(command: str, overrides: list[str], seed: int) -> dict[str, str]:
    commit, dirty = git_state()
    tags = {
        # The MLflow UI shows this one in the run's source column.
        "mlflow.source.git.commit": commit,
        "git.commit": commit,
        "git.dirty": str(dirty).lower() if dirty is not None else "unknown",
        "seed": str(seed),
        "command": replay_command(command, overrides),
        "argv": shlex.join(sys.argv),
    }
    tags |= {f"version.{name}": version for name, version in library_versions().items()}
    return tags
