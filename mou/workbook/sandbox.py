"""Parse untrusted workbooks in a child process with memory and time limits.

A hostile file can make a parser allocate without bound or run for minutes; in the child a
memory limit turns that into MemoryError, and the parent kills a child that runs too long.
The child is reused between files (start-up costs more than a typical parse).
"""

from __future__ import annotations

import multiprocessing
import resource
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection

from mou.workbook.extract import Extraction, Limits, Problem, extract


@dataclass(frozen=True)
class SandboxLimits:
    extract: Limits
    memory_bytes: int
    timeout_seconds: float


def _child(connection: Connection, limits: SandboxLimits) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    while True:
        try:
            data = connection.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            result: Extraction | Problem = extract(data, limits.extract)
        except Problem as problem:
            result = problem
        except MemoryError:
            connection.send(Problem("parse_memory"))
            return  # the heap may be fragmented beyond use: start afresh
        except RecursionError:
            result = Problem("corrupt", {"detail": "nesting too deep"})
        except Exception as exc:  # a parser bug must not take the service down
            result = Problem("corrupt", {"detail": type(exc).__name__})
        connection.send(result)


class Sandbox:
    """One reusable child process; ``parse`` is safe to call from several threads."""

    def __init__(self, limits: SandboxLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._process: multiprocessing.process.BaseProcess | None = None
        self._connection: Connection | None = None

    def _start(self) -> Connection:
        context = multiprocessing.get_context("spawn")  # no inherited threads or sockets
        parent, child = context.Pipe()
        process = context.Process(target=_child, args=(child, self.limits), daemon=True)
        process.start()
        child.close()
        self._process, self._connection = process, parent
        return parent

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join(timeout=5)
        if self._connection is not None:
            self._connection.close()
        self._process = self._connection = None

    def parse(self, data: bytes) -> Extraction | Problem:
        """The file's extraction, or the Problem that refuses it; never raises for the file."""
        with self._lock:
            alive = self._process is not None and self._process.is_alive()
            connection = self._connection if alive and self._connection else self._start()
            try:
                connection.send_bytes(data)
                if not connection.poll(self.limits.timeout_seconds):
                    self._stop()
                    return Problem("parse_timeout")
                result = connection.recv()
            except (EOFError, OSError, BrokenPipeError):
                # The child died (the kernel's answer to memory exhaustion, usually).
                self._stop()
                return Problem("parse_memory")
            if isinstance(result, Problem) and result.code == "parse_memory":
                self._stop()
            return result

    def close(self) -> None:
        with self._lock:
            self._stop()


_default: Sandbox | None = None
_default_lock = threading.Lock()


def default_sandbox(limits: SandboxLimits) -> Sandbox:
    """The process-wide sandbox (restarted if the limits change)."""
    global _default
    with _default_lock:
        if _default is None or _default.limits != limits:
            if _default is not None:
                _default.close()
            _default = Sandbox(limits)
        return _default
