"""Service name resolution: the hosts file each pod sees as ``/etc/hosts``.

There is no cluster DNS and no kube-proxy. Instead every pod's hosts file lists,
for each Service with ready endpoints, ``<svc>.<ns>.svc`` and
``<svc>.<ns>.svc.cluster.local`` (plus ``<svc>`` and ``<svc>.<ns>`` for Services in
the pod's own namespace) pointing straight at the endpoints' pod IPs, the
``hostname.subdomain`` names of headless Services' endpoints, and the
``kubernetes.default.svc`` names pointing at the API server on the host bridge.
Connections therefore go to the pod's port directly: a Service whose ``port``
differs from its ``targetPort`` is not translated.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

from localkube import apiclient, network

DOMAIN = "cluster.local"


def _ready(endpoint: apiclient.Obj) -> bool:
    return endpoint.get("conditions", {}).get("ready", True) is not False


def service_entries(
    services: Iterable[apiclient.Obj], slices: Iterable[apiclient.Obj]
) -> dict[tuple[str, str], dict[str, list[str]]]:
    """For each (namespace, service): name suffix -> endpoint addresses.

    The suffix ``""`` is the Service itself; ``"<hostname>."`` a headless endpoint.
    """
    wanted = {
        (s["metadata"]["namespace"], s["metadata"]["name"])
        for s in services
        if s["spec"].get("type", "ClusterIP") != "ExternalName"
    }
    entries: dict[tuple[str, str], dict[str, list[str]]] = collections.defaultdict(
        lambda: collections.defaultdict(list)
    )
    for piece in slices:
        metadata = piece["metadata"]
        service = metadata.get("labels", {}).get("kubernetes.io/service-name")
        key = (metadata["namespace"], service or "")
        if key not in wanted or piece.get("addressType") != "IPv4":
            continue
        for endpoint in piece.get("endpoints") or []:
            if not _ready(endpoint):
                continue
            for address in endpoint.get("addresses", []):
                names = entries[key]
                if address not in names[""]:
                    names[""].append(address)
                if endpoint.get("hostname"):
                    names[endpoint["hostname"] + "."].append(address)
    return entries


def render(
    pod: apiclient.Obj,
    address: str,
    entries: dict[tuple[str, str], dict[str, list[str]]],
) -> str:
    """The hosts file of one pod with IP ``address``."""
    namespace = pod["metadata"]["namespace"]
    hostname = pod["spec"].get("hostname") or pod["metadata"]["name"]
    own = [hostname]
    subdomain = pod["spec"].get("subdomain")
    if subdomain:
        own = [
            f"{hostname}.{subdomain}.{namespace}.svc.{DOMAIN}",
            f"{hostname}.{subdomain}.{namespace}.svc",
            hostname,
        ]
    api = [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        f"kubernetes.default.svc.{DOMAIN}",
    ]
    lines = [
        "# written by the localkube node agent: Service names -> ready endpoint pod IPs",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        f"{address}\t{' '.join(own)}",
        f"{network.GATEWAY}\t{' '.join(api)}",
    ]
    for (service_namespace, service), names in sorted(entries.items()):
        if (service_namespace, service) == ("default", "kubernetes"):
            continue
        for prefix, addresses in sorted(names.items()):
            base = f"{prefix}{service}.{service_namespace}"
            aliases = [f"{base}.svc.{DOMAIN}", f"{base}.svc"]
            if service_namespace == namespace:
                aliases += [base, f"{prefix}{service}"] if prefix == "" else [base]
            lines += [f"{a}\t{' '.join(aliases)}" for a in addresses]
    return "\n".join(lines) + "\n"
