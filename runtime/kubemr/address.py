"""Network addresses as text: ``host:port``, an IPv6 host in brackets (``[fd00::7]:7070``).

gRPC targets, HTTP URLs, the address files kubemr processes write and the shuffle
addresses workers advertise all take this form; an IPv6 host without brackets would have
its colons read as the port separator. Every place that writes or reads one goes through
:func:`join` and :func:`split`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

WILDCARDS = ("0.0.0.0", "::", "[::]")
"""Bind addresses that mean every interface. gRPC listens on both IPv4 and IPv6 for
either; the HTTP server is given no host for them, which does the same."""


def join(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host bracketed (a host already bracketed is kept)."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def split(address: str) -> tuple[str, int]:
    """The host (without brackets) and port of ``host:port`` or ``[v6 host]:port``.

    Raises ValueError naming the address if it is neither.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"{address!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{address!r}: an IPv6 host needs brackets: [{host}]:{port}")
    return host, int(port)


def listen_host(bind: str) -> str | None:
    """The host an HTTP server binds for ``bind``: None (every interface, IPv4 and IPv6)
    for a wildcard, else ``bind`` without brackets."""
    if bind in WILDCARDS:
        return None
    return bind.removeprefix("[").removesuffix("]")


class AbandonedError(RuntimeError):
    """The wait for an address was given up: the process that was to announce it ended."""


def await_file(
    path: Path,
    deadline: float,
    poll: float = 0.02,
    abandon: Callable[[], bool] | None = None,
) -> str:
    """The address a process announces in ``path`` (written whole, by a rename), once the
    file exists. Raises TimeoutError naming the file if it does not appear within
    ``deadline`` seconds, :class:`AbandonedError` as soon as ``abandon()`` is true (the
    announcing process has exited), ValueError if what it holds is not ``host:port``."""
    give_up = time.monotonic() + deadline
    while True:
        try:
            address = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            if abandon is not None and abandon():
                raise AbandonedError(f"{path}: no address announced") from None
            if time.monotonic() >= give_up:
                raise TimeoutError(f"{path}: no address announced within {deadline:g}s") from None
            time.sleep(poll)
            continue
        split(address)
        return address
