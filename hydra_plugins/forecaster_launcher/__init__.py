"""forecaster's launchers, registered where Hydra looks for plugins: Hydra instantiates a
launcher only when its class is defined under the `hydra_plugins` namespace package. The code is
in forecaster/cli/launcher.py (`launcher=joblib`) and forecaster/cli/ray_launcher.py
(`launcher=ray`, with the `cluster` extra)."""

from forecaster.cli import launcher


class IsolatingJoblibLauncher(launcher.IsolatingJoblibLauncher):
    """`forecaster.cli.launcher.IsolatingJoblibLauncher`, under the name Hydra accepts."""


try:
    from forecaster.cli import ray_launcher
except ImportError:  # no `cluster` extra: no Ray launcher
    ray_launcher = None
else:

    class LoopbackRayLauncher(ray_launcher.LoopbackRayLauncher):
        """`forecaster.cli.ray_launcher.LoopbackRayLauncher`, under the name Hydra accepts."""


def launchers() -> list[type]:
    found = [IsolatingJoblibLauncher]
    if ray_launcher is not None:
        found.append(LoopbackRayLauncher)
    return found
