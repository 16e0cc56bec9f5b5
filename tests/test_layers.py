"""The layering holds: data flows one way, and each heavy dependency stays in its own layer.

Read from the source with `ast` (what a module imports at its top or anywhere inside), and
checked at run time in a fresh interpreter (what importing a layer actually loads).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "forecaster"
# Each module may import from its own layer and the layers before it, never from a later one.
LAYERS = [
    "errors",
    "paths",
    "data",
    "training",
    "models",
    "evaluation",
    "serving",
    "tracking",
    "api",
    "cli",
    "__main__",
]
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def layer_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def imports(path: Path) -> list[tuple[str, int]]:
    """(dotted module name, line) of everything `path` imports."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: use absolute imports"
            if node.module == "forecaster":  # `from forecaster import tracking`
                found += [(f"forecaster.{alias.name}", node.lineno) for alias in node.names]
            else:
                found.append((node.module, node.lineno))
    return found


def internal_layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "forecaster" and len(parts) > 1 else None


def test_every_module_belongs_to_a_layer():
    unknown = {layer_of(p) for p in MODULES} - set(LAYERS) - {"__init__"}
    assert not unknown, f"add {unknown} to LAYERS in the right place"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_later_layer(path):
    own = layer_of(path)
    if own == "__init__":  # the package root sets up logging and nothing else
        assert not [m for m, _ in imports(path) if m.startswith("forecaster")]
        return
    for module, line in imports(path):
        layer = internal_layer(module)
        if layer is not None:
            assert LAYERS.index(layer) <= LAYERS.index(own), (
                f"{path.relative_to(REPO_ROOT)}:{line} ({own}) imports {module} ({layer}), "
                "a later layer"
            )


@pytest.mark.parametrize(
    "library, allowed",
    [
        ("mlflow", ("tracking",)),  # one subpackage talks to MLflow
        ("hydra", ("cli",)),  # configs are composed at the entry points only
        ("omegaconf", ("cli",)),
        ("tensorflow", ("models", "serving")),
        ("statsforecast", ("models",)),
        ("arch", ("models",)),
        ("sklearn", ("models",)),
        ("keras", ()),  # only the benchmark compares against Keras
    ],
)
def test_heavy_libraries_stay_in_their_layers(library, allowed):
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{line}"
        for path in MODULES
        for module, line in imports(path)
        if module.split(".")[0] == library and layer_of(path) not in allowed
    ]
    assert not offenders


def test_graph_building_creates_no_session_and_does_no_io():
    for name in ("lstm.py", "graph.py"):
        tree = ast.parse((PACKAGE / "models" / "seq2seq" / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                assert node.attr not in ("Session", "InteractiveSession"), f"{name}: a Session"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "open", f"{name}: file I/O"


def test_layers_below_the_model_load_neither_tensorflow_nor_mlflow():
    """Reading data, training bookkeeping, baselines, metrics, backtests and plots, and
    composing the config, must not pay for TensorFlow's import (about 9 s), MLflow's or
    statsforecast's (about 5 s, only for the ETS and ARIMA baselines) or arch's (about 3 s,
    only for the GARCH baseline)."""
    code = (
        "import sys\n"
        "import forecaster.data, forecaster.data.synthetic, forecaster.training\n"
        "import forecaster.models, forecaster.models.baselines, forecaster.evaluation\n"
        "import forecaster.models.probabilistic, forecaster.evaluation.probabilistic\n"
        "import forecaster.evaluation.backtest, forecaster.evaluation.plots\n"
        "import forecaster.models.seq2seq.spec, forecaster.cli.config, forecaster.api\n"
        "heavy = ('tensorflow', 'mlflow', 'keras', 'statsforecast', 'arch')\n"
        "loaded = [m for m in heavy if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_cli_entry_points_load_tensorflow_and_mlflow_only_when_a_command_runs():
    """`python -m forecaster train --help` and `--cfg job` compose the config and stop: the
    entry modules (and the sweep callback Hydra instantiates) import the heavy libraries inside
    the functions that need them."""
    code = (
        "import sys\n"
        "import forecaster.__main__, forecaster.cli.train, forecaster.cli.predict\n"
        "import forecaster.cli.sweep_callback\n"
        "loaded = [m for m in ('tensorflow', 'mlflow', 'matplotlib') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "import forecaster.cli.backtest  # its figures need matplotlib, no more\n"
        "loaded = [m for m in ('tensorflow', 'mlflow') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
