"""host:port as text, IPv6 hosts bracketed (kubemr.address)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from kubemr import address


@pytest.mark.parametrize(
    ("host", "port", "text"),
    [
        ("127.0.0.1", 7070, "127.0.0.1:7070"),
        ("wc-master.batch.svc", 7070, "wc-master.batch.svc:7070"),
        ("::1", 7071, "[::1]:7071"),
        ("fd00:10:244::7", 9090, "[fd00:10:244::7]:9090"),
        ("[fd00::7]", 1, "[fd00::7]:1"),
    ],
)
def test_join_brackets_ipv6_hosts_and_split_undoes_it(host: str, port: int, text: str) -> None:
    assert address.join(host, port) == text
    assert address.split(text) == (host.strip("[]"), port)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fd00::7:7070", "an IPv6 host needs brackets: \\[fd00::7\\]:7070"),
        ("localhost", "is not host:port"),
        (":7070", "is not host:port"),
        ("host:http", "is not host:port"),
    ],
)
def test_split_refuses_what_is_not_host_and_port(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        address.split(text)


def test_wildcards_listen_on_every_interface_of_every_family() -> None:
    assert address.listen_host("0.0.0.0") is None
    assert address.listen_host("::") is None
    assert address.listen_host("[::1]") == "::1"
    assert address.listen_host("127.0.0.1") == "127.0.0.1"


def test_an_announced_address_is_read_once_its_file_appears(tmp_path: Path) -> None:
    path = tmp_path / "master.addr"
    writer = threading.Timer(0.1, lambda: path.write_text("127.0.0.1:4321\n"))
    writer.start()
    try:
        assert address.await_file(path, deadline=30.0, poll=0.01) == "127.0.0.1:4321"
    finally:
        writer.join()


def test_an_address_never_announced_names_its_file(tmp_path: Path) -> None:
    with pytest.raises(TimeoutError, match=r"master\.addr"):
        address.await_file(tmp_path / "master.addr", deadline=0.0)


def test_an_announced_file_that_holds_no_address_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.addr"
    path.write_text("not an address")
    with pytest.raises(ValueError, match="not host:port"):
        address.await_file(path, deadline=1.0)


def test_the_wait_is_abandoned_once_the_announcer_has_exited(tmp_path: Path) -> None:
    checks: list[int] = []

    def exited() -> bool:
        checks.append(1)
        return len(checks) >= 3  # the process is seen gone at the third check

    with pytest.raises(address.AbandonedError, match=r"master\.addr"):
        address.await_file(tmp_path / "master.addr", deadline=30.0, poll=0.0, abandon=exited)
    assert len(checks) == 3
