"""The embedded Prefect server belongs to the service that started it: it never adopts a port
something else holds, and it does not outlive the service, even one killed with -9."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mou.errors import Refused
from mou.service import prefect_server
from tests.e2e.test_service import free_port

pytestmark = pytest.mark.timeout(240)


def listening(port: int) -> bool:
    with socket.socket() as client:
        client.settimeout(1)
        return client.connect_ex(("127.0.0.1", port)) == 0


def test_a_port_something_else_holds_is_refused_not_adopted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_start(*args, **kwargs):
        raise AssertionError("a server was started on a taken port")

    monkeypatch.setattr(prefect_server.subprocess, "Popen", must_not_start)
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with (
            pytest.raises(Refused, match=f"port {port} .* already in use"),
            prefect_server.embedded_prefect_server(tmp_path, "127.0.0.1", port),
        ):
            pass


def test_the_server_dies_with_a_service_killed_with_minus_9(tmp_path: Path) -> None:
    port = free_port()
    service = (
        "import pathlib, time\n"
        "from mou.service.prefect_server import embedded_prefect_server\n"
        f"with embedded_prefect_server(pathlib.Path({str(tmp_path)!r}), '127.0.0.1', {port}):\n"
        "    print('up', flush=True)\n"
        "    time.sleep(600)\n"
    )
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    child = subprocess.Popen(
        [sys.executable, "-c", service], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "up"
        assert listening(port)
        os.kill(child.pid, signal.SIGKILL)  # no chance to stop its server in order
        child.wait(timeout=10)
        deadline = time.monotonic() + 60
        while listening(port) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not listening(port), "the Prefect server outlived the service"
    finally:
        if child.poll() is None:
            child.kill()
