"""Start and stop the embedded Prefect server (its own SQLite under var/prefect)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mou.errors import Refused

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def server_environment(home: Path) -> dict[str, str]:
    """The embedded Prefect server's environment: the service's own settings left out.

    The server needs none of ``MOU_*``, and they hold the service's secrets (the signing
    secret, passwords in the database URL and for SMTP).
    """
    env = prefect_environment(home)
    return {name: value for name, value in env.items() if not name.startswith("MOU_")}


def prefect_environment(home: Path, api_url: str | None = None) -> dict[str, str]:
    """Environment for a Prefect process: own home, no telemetry, quick polling."""
    env = dict(os.environ)
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
            "PREFECT_CLI_PROMPT": "false",
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
            "PREFECT_WORKER_QUERY_SECONDS": "1",
        }
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def refuse_taken_port(host: str, port: int) -> None:
    """Refuse to start where something already listens (Refused names the setting)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise Refused(
                f"port {port} on {host} is already in use ({exc.strerror}), perhaps by a Prefect "
                "server of an earlier run: stop that process, or set MOU_PREFECT_PORT (or "
                "PREFECT_API_URL to use a server that runs on purpose)"
            ) from exc


# Looked up here, not in the forked child (find_library runs ldconfig).
_LIBC = ctypes.CDLL(ctypes.util.find_library("c")) if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:
    # In the child, before exec: Linux sends SIGTERM to it when its parent dies, however.
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def wait_healthy(api_url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Poll ``/health`` until the server answers; refuse if it dies or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise Refused(f"the Prefect server exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise Refused(f"the Prefect server at {api_url} did not answer within {timeout:.0f} s")


@contextmanager
def embedded_prefect_server(
    home: Path, host: str, port: int, timeout: float = 90.0
) -> Iterator[str]:
    """Run ``prefect server start`` for the duration of the block; yields the API URL.

    The port must be free: an answer on it would be another process (an older server left
    running, another service), which this one must not silently adopt. The server is a child
    that dies with this process, even when this process is killed (-9) and cannot stop it.
    """
    home.mkdir(parents=True, exist_ok=True)
    api_url = f"http://{host}:{port}/api"
    refuse_taken_port(host, port)
    log = (home / "server.log").open("ab")
    # The Prefect of this interpreter, whatever is (or is not) on PATH.
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)],
        env=server_environment(home),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches us; we stop the server in order
        preexec_fn=_die_with_parent,
    )
    try:
        wait_healthy(api_url, timeout, process)
        yield api_url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()
