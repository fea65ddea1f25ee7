"""Parse untrusted workbooks in a child process with memory and time limits.

A hostile file can make a parser allocate without bound or run for minutes; in the child a
memory limit turns that into MemoryError, and the parent kills a child that runs too long.
The child (``python -m mou.workbook.sandbox``) is reused between files, since starting it
costs more than a typical parse. Frames on its pipes: 8-byte length, then the payload.
"""

from __future__ import annotations

import os
import pickle
import resource
import select
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, Any

from mou.workbook.extract import Extraction, Limits, Problem, extract

_HEADER = struct.Struct(">Q")


@dataclass(frozen=True)
class SandboxLimits:
    extract: Limits
    memory_bytes: int
    timeout_seconds: float


def _write_frame(stream: IO[bytes], payload: bytes) -> None:
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read_frame(stream: IO[bytes]) -> bytes:
    (size,) = _HEADER.unpack(_read_exact(stream, _HEADER.size))
    return _read_exact(stream, size)


def _child_main() -> None:
    """Serve parse requests on stdin/stdout until the parent closes the pipe."""
    requests, replies = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    sys.stdout = sys.stderr  # nothing but frames may reach the parent's pipe
    limits: SandboxLimits = pickle.loads(_read_frame(requests))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    while True:
        try:
            data = _read_frame(requests)
        except EOFError:
            return
        fatal = False
        try:
            result: Extraction | Problem = extract(data, limits.extract)
        except Problem as problem:
            result = problem
        except MemoryError:
            result, fatal = Problem("parse_memory"), True
        except RecursionError:
            result = Problem("corrupt", {"detail": "nesting too deep"})
        except Exception as exc:  # a parser bug must not take the service down
            result = Problem("corrupt", {"detail": type(exc).__name__})
        try:
            _write_frame(replies, pickle.dumps(result))
        except MemoryError:
            _write_frame(replies, pickle.dumps(Problem("parse_memory")))
            fatal = True
        if fatal:
            return  # the heap may be fragmented beyond use: start afresh


class Sandbox:
    """One reusable child process; ``parse`` is safe to call from several threads."""

    def __init__(self, limits: SandboxLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "mou.workbook.sandbox"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert process.stdin is not None
        _write_frame(process.stdin, pickle.dumps(self.limits))
        self._process = process
        return process

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            for stream in (self._process.stdin, self._process.stdout):
                if stream is not None:
                    stream.close()
        self._process = None

    def _reply(self, process: subprocess.Popen[bytes], deadline: float) -> Any:
        assert process.stdout is not None
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([process.stdout], [], [], max(remaining, 0))
        if not ready:
            raise TimeoutError
        return pickle.loads(_read_frame(process.stdout))

    def parse(self, data: bytes) -> Extraction | Problem:
        """The file's extraction, or the Problem that refuses it; never raises for the file."""
        with self._lock:
            process = self._process
            if process is None or process.poll() is not None:
                self._stop()
                process = self._start()
            assert process.stdin is not None
            try:
                _write_frame(process.stdin, data)
                result = self._reply(process, time.monotonic() + self.limits.timeout_seconds)
            except TimeoutError:
                self._stop()
                return Problem("parse_timeout")
            except (EOFError, OSError, pickle.UnpicklingError):
                # The child died: the kernel's answer to memory exhaustion, usually.
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


if __name__ == "__main__":
    _child_main()
