"""forecaster's joblib launcher (`launcher=joblib`), registered where Hydra looks for plugins:
Hydra instantiates a launcher only when its class is defined under the `hydra_plugins` namespace
package. The code is forecaster/cli/launcher.py."""

from forecaster.cli import launcher


class IsolatingJoblibLauncher(launcher.IsolatingJoblibLauncher):
    """`forecaster.cli.launcher.IsolatingJoblibLauncher`, under the name Hydra accepts."""
