"""A real `mlflow server` on a free loopback port, a real `mlflow models serve`, and headless
Chromium to look at the server's UI.

`mlflow_server(root)` starts this environment's `mlflow server` bound to 127.0.0.1, with a SQLite
store (or the database given) and proxied artifacts under `root`, waits until `/health` answers
and, however the body ends, stops the server's whole process group. `render_dom` and
`screenshot` open a page in Debian's headless `chromium`. `model_server(model_uri, tracking_uri,
root)` serves a logged model over REST the same way.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"  # loopback only: the test server is never reachable from elsewhere
CHROMIUM = "/usr/bin/chromium"  # Debian's `chromium` package
CHROMIUM_INSTALL = "apt-get update && apt-get install -y chromium"


@dataclass(frozen=True)
class MlflowServer:
    url: str  # http://127.0.0.1:<port>, the tracking URI
    root: Path  # mlflow.db, artifacts/ and server.log
    startup_seconds: float  # from launch to the first healthy answer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextmanager
def mlflow_server(
    root: Path, timeout: float = 120.0, backend_store_uri: str | None = None
) -> Iterator[MlflowServer]:
    """`with mlflow_server(tmp) as server:` a running server, stopped on exit. Its store is
    `backend_store_uri`, by default a SQLite file under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://{HOST}:{port}"
    command = [
        str(Path(sys.executable).parent / "mlflow"),  # the mlflow installed beside this Python
        "server",
        "--host", HOST,
        "--port", str(port),
        "--backend-store-uri", backend_store_uri or f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
        "--workers", "1",  # each worker imports all of mlflow: one starts fastest
    ]  # fmt: skip
    log = root / "server.log"
    started = time.monotonic()
    # No GenAI job runners (7 huey processes that outlive SIGTERM): tracking and UI only.
    process = _start(command, root, log, {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    try:
        _wait_until_healthy(url, process, log, started + timeout)
        yield MlflowServer(url, root, time.monotonic() - started)
    finally:
        _stop_group(process)


@contextmanager
def model_server(
    model_uri: str, tracking_uri: str, root: Path, timeout: float = 180.0
) -> Iterator[str]:
    """`with model_server("models:/m@champion", uri, tmp) as url:` a running
    `mlflow models serve` of `model_uri` in this environment, on loopback; its URL.

    `--env-manager local`: the model runs in this Python, so no virtualenv is built for it.
    """
    root.mkdir(parents=True, exist_ok=True)
    url = f"http://{HOST}:{free_port()}"
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "models", "serve",
        "-m", model_uri,
        "--env-manager", "local",
        "--host", HOST,
        "--port", url.rsplit(":", 1)[1],
        "--workers", "1",
    ]  # fmt: skip
    log = root / "models_serve.log"
    process = _start(command, root, log, {"MLFLOW_TRACKING_URI": tracking_uri})
    try:
        _wait_until_healthy(url, process, log, time.monotonic() + timeout, path="/ping")
        yield url
    finally:
        _stop_group(process)


def _start(command: list[str], root: Path, log: Path, env: dict[str, str]) -> subprocess.Popen:
    """`command` in `root`, its output into `log`, in a process group of its own (so that
    teardown reaches its workers), with `env` added to this environment."""
    with log.open("wb") as output:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=root,
            env=os.environ | env,
            start_new_session=True,
        )


def _wait_until_healthy(
    url: str, process: subprocess.Popen, log: Path, deadline: float, path: str = "/health"
) -> None:
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"mlflow {process.args[1]} exited with {process.returncode} before it was healthy; "
                f"its output:\n{_tail(log)}"
            )
        try:
            with urllib.request.urlopen(f"{url}{path}", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:  # refused, reset or timed out while it starts
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"mlflow {process.args[1]} at {url} not healthy in time; its output:\n{_tail(log)}"
            )
        time.sleep(0.5)


def _stop_group(process: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM the group, give it `grace` seconds, then SIGKILL whatever is left of it."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(grace)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _tail(log: Path, chars: int = 4000) -> str:
    return log.read_text(errors="replace")[-chars:]


# -- the UI -------------------------------------------------------------------------------------


def chromium_available() -> bool:
    return os.access(CHROMIUM, os.X_OK)


def render_dom(url: str, *, window: tuple[int, int] = (1600, 1000), budget_ms: int = 20_000) -> str:
    """The page's DOM once its scripts have run and its requests have settled."""
    return _chromium(
        url,
        f"--virtual-time-budget={budget_ms}",
        f"--window-size={window[0]},{window[1]}",  # the table renders only the columns in view
        "--dump-dom",
    )


def screenshot(
    url: str,
    path: Path,
    *,
    window: tuple[int, int] = (1600, 1000),
    budget_ms: int = 20_000,
) -> Path:
    _chromium(
        url,
        f"--virtual-time-budget={budget_ms}",
        f"--window-size={window[0]},{window[1]}",
        "--hide-scrollbars",
        f"--screenshot={path}",
    )
    return path


def _chromium(url: str, *flags: str, timeout: float = 120.0) -> str:
    """Run headless Chromium on `url` in a fresh profile; its stdout."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        command = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # we run as root in a container
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            *flags,
            url,
        ]
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        finally:
            _stop_group(process, grace=5.0)
    if process.returncode != 0:
        raise RuntimeError(f"chromium exited with {process.returncode}:\n{stderr[-4000:]}")
    return stdout
