"""Where forecaster finds its configs and bundled data, and where it writes by default.

`conf/` (with `experiments/` as its `experiment` group) and `data/` sit at the top of the
repository and are shipped inside the package as `forecaster.conf` and `forecaster.datasets`
(see pyproject.toml), so a checkout and an installed wheel find them the same way: as package
resources.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

CONFIG_MODULE = "forecaster.conf"
DATASETS_MODULE = "forecaster.datasets"
PACKAGE_DIR = Path(__file__).resolve().parent


def bundled(name: str) -> str:
    """`${bundled:sp500.csv}`: the absolute path of a bundled data file."""
    return str(Path(str(files(DATASETS_MODULE).joinpath(name))).resolve())


def source_checkout() -> Path | None:
    """The repository root when the package runs from a source checkout, else None."""
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() else None


def workspace(name: str) -> str:
    """`${workspace:mlflow.db}`: a path in the checkout root when running from a checkout (so
    runs from any directory land in one store), else in the current working directory."""
    return str((source_checkout() or Path.cwd()).resolve() / name)
