"""Joining a named Ray cluster (--address / cluster.address / RAY_ADDRESS) without waiting for ever.

ray.init on an address retries for ever when something answers there that is not a Ray cluster (the
dashboard or job server port given by mistake, any HTTP server, a cluster that wants a token). So
before it, :func:`check_reachable` opens one TCP connection (nothing listening: refused in seconds)
and looks at what answers: Ray's GCS and Ray Client servers (gRPC) speak first, sending their HTTP/2
settings as soon as a connection opens, while an HTTP/1 server says nothing until asked; one that then
answers a HEAD request is named in the refusal, with the port to use instead. During ray.init,
:func:`bounded_join` ends the process with one line after _JOIN_TIMEOUT_S, or at once on SIGTERM.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from typing import Iterator, Optional

from raygan.config import ConfigError
from raygan.secrets import redact

# Seconds to open a TCP connection to a Ray address: a live GCS answers in milliseconds, while
# ray.init on a dead address retries for minutes.
_CONNECT_TIMEOUT_S = 5.0
# Seconds to wait for the first bytes of the service at a Ray address before asking it for HTTP.
_PROBE_S = 1.0
# Seconds ray.init may take to join a named cluster before the job gives up with one line.
_JOIN_TIMEOUT_S = 120.0
_WHERE = "fix --address / cluster.address / RAY_ADDRESS"


def _http_status(sock: socket.socket) -> Optional[str]:
    """The status line of an HTTP server on ``sock``; None when what listens there speaks first (a
    gRPC server: Ray) or does not answer like HTTP."""
    sock.settimeout(_PROBE_S)
    try:
        if sock.recv(1, socket.MSG_PEEK):
            return None
    except socket.timeout:
        pass
    try:
        sock.sendall(b"HEAD / HTTP/1.0\r\nHost: raygan\r\n\r\n")
        sock.settimeout(2 * _PROBE_S)
        head = sock.recv(256)
    except OSError:
        return None
    return head.split(b"\r\n", 1)[0].decode("latin-1") if head.startswith(b"HTTP/") else None


def check_reachable(address: str) -> None:
    """Refuse, within seconds, a Ray address nothing listens on (ray.init would retry for minutes) or
    where an HTTP server answers (ray.init would wait for ever).

    "auto" and "local" name no host and are left to ray.init; "ray://host:port" (Ray Client) and
    "host:port" (the GCS) are probed with one TCP connection.
    """
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"Ray address {redact(address)!r} is not host:port (or ray://host:port); {_WHERE}")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=_CONNECT_TIMEOUT_S) as sock:
            http = _http_status(sock)
    except OSError as err:
        raise ConfigError(f"cannot reach the Ray cluster at {redact(address)} "
                          f"({err.strerror or type(err).__name__}); start it or {_WHERE} (unset all "
                          "three for a local Ray)") from None
    if http is not None:
        host = redact(host)
        raise ConfigError(f"the Ray address {redact(address)} answers HTTP ({http}): that is the "
                          f"dashboard / job server port, not the GCS port (usually 6379); use {host}:6379 "
                          f"or ray://{host}:10001 (Ray Client), or submit the job with `ray job submit "
                          f"--address http://{host}:{port}`")


def _end(line: str, code: int) -> None:
    os.write(2, f"raygan: {redact(line)}\n".encode())
    os._exit(code)


@contextlib.contextmanager
def bounded_join(address: str, timeout_s: Optional[float] = None) -> Iterator[None]:
    """ray.init inside this block ends the process with one line after ``timeout_s`` (default
    _JOIN_TIMEOUT_S; exit 2) or on SIGTERM (exit 143).

    ray.init installs a Python SIGTERM handler, which runs only once its C++ retries return (on an
    address that accepts but never answers: never). Python's C-level handler still writes the signal's
    number to the wakeup fd at once, so a thread of ours reads it there and ends the process; nothing
    has been written yet (raygan.cluster.entry joins a named cluster before the run folder is touched).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    timeout_s = _JOIN_TIMEOUT_S if timeout_s is None else timeout_s
    deadline = time.monotonic() + timeout_s
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            reader.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                got = reader.recv(1)
            except socket.timeout:
                if not done.is_set():
                    _end(f"config error: no Ray cluster answered at {address} within {timeout_s:g}s; give "
                         "its GCS port (usually 6379) or ray://host:10001, and its token (RAY_AUTH_TOKEN) "
                         f"if it wants one; {_WHERE}", 2)
                return
            except OSError:
                return
            if not got:
                return
            if got[0] == signal.SIGTERM and not done.is_set():
                _end(f"stopped by SIGTERM while joining the Ray cluster at {address}", 128 + signal.SIGTERM)

    previous = signal.set_wakeup_fd(writer.fileno())
    watcher = threading.Thread(target=watch, name="raygan-join", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        signal.set_wakeup_fd(previous)
        writer.close()  # the watcher's recv returns b"" (or fails) and it ends
        watcher.join(timeout=5)
        reader.close()
