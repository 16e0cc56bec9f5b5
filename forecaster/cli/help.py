"""`forecaster <command> --help`: what the command does, its config groups and every key with
its default and meaning.

Nothing here is written twice: the keys and defaults are the command's composed config (what a
run would use), the meanings are the comments beside each field of the typed schema
(`forecaster/cli/config.py` and the dataclasses it reuses), and the description is the command
module's docstring.
"""

from __future__ import annotations

import importlib
import inspect
import io
import textwrap
import tokenize
from dataclasses import fields, is_dataclass
from importlib import resources
from typing import Any, get_type_hints

from omegaconf import OmegaConf

from forecaster.cli import config
from forecaster.paths import CONFIG_MODULE

SCHEMAS = {
    "train": config.TrainAppConf,
    "backtest": config.BacktestAppConf,
    "predict": config.PredictAppConf,
}
GROUPS = ("data", "tracking", "experiment", "hparams_search", "launcher")
WIDTH = 100


def field_comments(cls: type) -> dict[str, str]:
    """{field: its comment} for a dataclass and its bases: the comment on the field's line, else
    the comment lines right above it."""
    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not is_dataclass(klass) or klass is object:
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        found |= _comments_in(source, {f.name for f in fields(klass)})
    return found


def _comments_in(source: str, names: set[str]) -> dict[str, str]:
    lines = source.splitlines()
    trailing: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            trailing[token.start[0]] = token.string.lstrip("#").strip()
    found: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        name = line.strip().split(":", 1)[0]
        if name not in names or line.strip().startswith("#"):
            continue
        if number in trailing and not lines[number - 1].strip().startswith("#"):
            found[name] = trailing[number]
            continue
        above, k = [], number - 1
        while k >= 1 and lines[k - 1].strip().startswith("#"):
            above.insert(0, lines[k - 1].strip().lstrip("#").strip())
            k -= 1
        if above:
            found[name] = " ".join(above)
    return found


def _leaves(schema: type, prefix: str = "") -> dict[str, str]:
    """{dotted key: meaning} for every leaf field of `schema`."""
    meanings = field_comments(schema)
    hints = get_type_hints(schema)
    out: dict[str, str] = {}
    for f in fields(schema):
        kind = hints.get(f.name)
        if is_dataclass(kind):
            out |= _leaves(kind, f"{prefix}{f.name}.")
        else:
            out[f"{prefix}{f.name}"] = meanings.get(f.name, "")
    return out


def _options(group: str) -> list[str]:
    folder = resources.files(CONFIG_MODULE) / group
    if not folder.is_dir():
        return []
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def _description(command: str) -> str:
    module = importlib.import_module(f"forecaster.cli.{command}")
    return (module.__doc__ or "").strip().split("\n\n")[0]


def _value(node: Any, key: str) -> str:
    try:
        value = OmegaConf.select(node, key, throw_on_missing=False)
    except Exception:  # noqa: BLE001 (an interpolation that needs the environment)
        value = OmegaConf.select(node, key, throw_on_resolution_failure=False)
    if value is None:
        return "null"
    if OmegaConf.is_config(value):
        return str(OmegaConf.to_container(value, resolve=True))
    return str(value)


def command_help(command: str) -> str:
    """The help text of `command` (train, backtest or predict)."""
    from hydra import compose, initialize_config_module

    config.register()
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        composed = compose(command, return_hydra_config=True)
    choices = composed.hydra.runtime.choices
    leaves = _leaves(SCHEMAS[command])
    key_width = max(len(k) for k in leaves) + 2
    lines = [
        f"usage: forecaster {command} [key=value ...] [group=option ...] [-m] [-v]",
        "",
        _description(command),
        "",
        "config groups (group=option; the default in brackets):",
    ]
    for group in GROUPS:
        options = _options(group)
        if not options or group not in choices:
            continue
        chosen = choices.get(group)
        shown = [f"[{o}]" if o == chosen else o for o in options]
        lines.append(f"  {group:<{key_width}}{', '.join(shown)}")
    lines += ["", "keys (key=value), with their defaults here and what they mean:"]
    for key, meaning in leaves.items():
        default = _value(composed, key)
        lines.append(f"  {key:<{key_width}}{default}")
        indent = " " * (key_width + 4)
        if meaning:
            lines += textwrap.wrap(meaning, WIDTH, initial_indent=indent, subsequent_indent=indent)
    lines += [
        "",
        "flags: -m (a sweep over comma lists), -v (library log lines too), --cfg job (print the",
        "composed config), --hydra-help (Hydra's own options).",
    ]
    return "\n".join(lines)
