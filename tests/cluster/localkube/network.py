"""Pod networking: one network namespace per pod on a host bridge.

The host gets a bridge (``lkbr0``, 10.213.0.1/16). Each pod gets a network
namespace ``lk-<uid>`` with a veth pair: ``eth0`` inside with the pod's IP, the
host end enslaved to the bridge. Pods reach each other over the bridge and the
host (the API server) at the bridge address. Names resolve through a hosts file
per pod, ``/etc/netns/<netns>/hosts``, which ``ip netns exec`` bind-mounts over
``/etc/hosts``; it is rewritten in place (same inode) so the bind mount sees
every update. There is no kube-proxy: a Service name resolves straight to its
ready endpoints' pod IPs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path

BRIDGE = "lkbr0"
SUBNET = ipaddress.IPv4Network("10.213.0.0/16")
GATEWAY = ipaddress.IPv4Address("10.213.0.1")
"""The bridge's address: the host (and the API server) as pods see it."""
BRIDGE_MAC = "02:00:" + ":".join(f"{byte:02x}" for byte in GATEWAY.packed)
"""The bridge's fixed, locally administered MAC address (02:00 + the gateway's IPv4).
A bridge left to choose takes the lowest MAC of its ports and changes it when that port
goes: every pod's ARP entry for the gateway then points nowhere and pods lose the API
server for tens of seconds (the operator's leader election found it)."""
NETNS_PREFIX = "lk-"
VETH_PREFIX = "lkv"
NETNS_ETC = Path("/etc/netns")


class NetworkError(RuntimeError):
    """An ``ip`` command failed."""


def ip(*args: str, check: bool = True) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def ensure_tools() -> None:
    """Install iproute2 (``ip``) and util-linux (``unshare``) from Debian if missing."""
    missing = [tool for tool in ("ip", "unshare", "mount") if shutil.which(tool) is None]
    if not missing:
        return
    packages = {"ip": "iproute2", "unshare": "util-linux", "mount": "mount"}
    wanted = sorted({packages[tool] for tool in missing})
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *wanted], check=True
    )


def ensure_bridge() -> None:
    """Create and bring up the host bridge (idempotent)."""
    if BRIDGE not in list_links():
        ip("link", "add", BRIDGE, "type", "bridge")
    if Path(f"/sys/class/net/{BRIDGE}/address").read_text().strip() != BRIDGE_MAC:
        ip("link", "set", BRIDGE, "address", BRIDGE_MAC)
    if str(GATEWAY) not in ip("-4", "addr", "show", "dev", BRIDGE):
        ip("addr", "add", f"{GATEWAY}/{SUBNET.prefixlen}", "dev", BRIDGE)
    ip("link", "set", BRIDGE, "up")
    # Bridged traffic must not be sent through the host's iptables FORWARD chain.
    with contextlib.suppress(OSError):
        Path("/proc/sys/net/bridge/bridge-nf-call-iptables").write_text("0\n")


def list_links() -> list[str]:
    names = []
    for line in ip("-o", "link", "show").splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        names.append(name)
    return names


def list_netns() -> list[str]:
    return [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]


@dataclasses.dataclass(frozen=True)
class PodNetwork:
    """One pod's network namespace, veth and address."""

    netns: str
    veth: str
    address: ipaddress.IPv4Address

    @property
    def etc(self) -> Path:
        """``/etc/netns/<netns>``: files bind-mounted over ``/etc`` inside the pod."""
        return NETNS_ETC / self.netns

    @property
    def hosts(self) -> Path:
        return self.etc / "hosts"


class AddressPool:
    """Hands out pod addresses from :data:`SUBNET`, oldest-freed reused last."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = int(GATEWAY) + 255  # 10.213.1.0 and up; .0.x is the host's
        self._used: set[int] = set()

    def take(self) -> ipaddress.IPv4Address:
        with self._lock:
            first = int(SUBNET.network_address) + 256
            last = int(SUBNET.broadcast_address) - 1
            for _ in range(last - first):
                candidate = self._next
                self._next = first if self._next >= last else self._next + 1
                if candidate not in self._used and candidate & 0xFF not in (0, 255):
                    self._used.add(candidate)
                    return ipaddress.IPv4Address(candidate)
        raise NetworkError(f"no free pod address left in {SUBNET}")

    def give_back(self, address: ipaddress.IPv4Address) -> None:
        with self._lock:
            self._used.discard(int(address))


def create_pod_network(uid: str, address: ipaddress.IPv4Address, hosts: str) -> PodNetwork:
    """Create the namespace, veth, address, routes and the hosts/resolv.conf files."""
    key = uid.replace("-", "")[:10]
    network = PodNetwork(f"{NETNS_PREFIX}{key}", f"{VETH_PREFIX}{key}", address)
    network.etc.mkdir(parents=True, exist_ok=True)
    network.hosts.write_text(hosts)
    # No DNS server exists: a name missing from hosts must fail at once, not time out.
    (network.etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions ndots:1 attempts:1\n")
    ip("netns", "add", network.netns)
    ip("link", "add", network.veth, "type", "veth", "peer", "name", "eth0", "netns", network.netns)
    ip("link", "set", network.veth, "master", BRIDGE, "up")
    inside = ("-n", network.netns)
    ip(*inside, "link", "set", "lo", "up")
    ip(*inside, "addr", "add", f"{address}/{SUBNET.prefixlen}", "dev", "eth0")
    ip(*inside, "link", "set", "eth0", "up")
    ip(*inside, "route", "add", "default", "via", str(GATEWAY))
    return network


def write_hosts(network: PodNetwork, content: str) -> None:
    """Rewrite the pod's hosts file in place, keeping its inode (it is bind-mounted)."""
    with contextlib.suppress(FileNotFoundError), network.hosts.open("r+") as hosts:
        if hosts.read() == content:
            return
        hosts.seek(0)
        hosts.write(content)
        hosts.truncate()


def kill_netns_processes(netns: str) -> None:
    for pid in ip("netns", "pids", netns, check=False).split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def delete_pod_network(netns: str) -> None:
    """Remove a pod's namespace (which takes its veth pair with it) and its /etc files."""
    kill_netns_processes(netns)
    ip("netns", "delete", netns, check=False)
    veth = VETH_PREFIX + netns.removeprefix(NETNS_PREFIX)
    if veth in list_links():
        ip("link", "delete", veth, check=False)
    shutil.rmtree(NETNS_ETC / netns, ignore_errors=True)


def sweep() -> list[str]:
    """Delete every pod namespace, veth and the bridge; return what was removed."""
    removed: list[str] = []
    if shutil.which("ip") is None:
        return removed
    for netns in list_netns():
        if netns.startswith(NETNS_PREFIX):
            delete_pod_network(netns)
            removed.append(f"netns {netns}")
    for link in list_links():
        if link.startswith(VETH_PREFIX):
            ip("link", "delete", link, check=False)
            removed.append(f"veth {link}")
    if BRIDGE in list_links():
        ip("link", "delete", BRIDGE, check=False)
        removed.append(f"bridge {BRIDGE}")
    if NETNS_ETC.is_dir():
        for leftover in NETNS_ETC.glob(f"{NETNS_PREFIX}*"):
            shutil.rmtree(leftover, ignore_errors=True)
    return removed


def leftovers() -> list[str]:
    """Pod namespaces, veths and the bridge that still exist (for checks after down)."""
    if shutil.which("ip") is None:
        return []
    found = [f"netns {n}" for n in list_netns() if n.startswith(NETNS_PREFIX)]
    found += [f"link {n}" for n in list_links() if n.startswith(VETH_PREFIX) or n == BRIDGE]
    return found
