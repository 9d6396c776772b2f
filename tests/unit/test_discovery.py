"""kubemr_operator.discovery: kopf's observers see their watch-streams' listings.

Driven through kopf's own observer functions and its real ``Insights``: a namespace that
only the watch-stream's listing reports (type ``None``) is served after the patch.
"""

from __future__ import annotations

import asyncio

from kopf._cogs.structs import references
from kopf._core.reactor import observation
from kubemr_operator import discovery


def listed(name: str) -> dict[str, object]:
    return {"type": None, "object": {"metadata": {"name": name}}}


def test_a_namespace_seen_only_in_the_watch_listing_is_served() -> None:
    discovery.install(served_groups={"kubemr.io"})
    insights = references.Insights()

    async def feed() -> None:
        for name in ("test-new", "other"):
            await observation.process_discovered_namespace_event(
                raw_event=listed(name), namespaces=["test-*"], insights=insights
            )

    asyncio.run(feed())
    assert insights.namespaces == {"test-new"}


def test_installing_twice_wraps_once() -> None:
    discovery.install(served_groups={"kubemr.io"})
    first = observation.process_discovered_namespace_event
    discovery.install(served_groups={"kubemr.io"})
    assert observation.process_discovered_namespace_event is first


def test_a_listed_crd_of_a_foreign_group_triggers_no_rescan() -> None:
    discovery.install(served_groups={"kubemr.io"})
    crd = {"spec": {"group": "example.com", "names": {"plural": "things"}}}

    async def feed() -> None:
        # A rescan would need the API (settings and registry are not given): returning
        # quietly is the proof that none was attempted.
        await observation.process_discovered_resource_event(
            raw_event={"type": None, "object": crd}, insights=references.Insights()
        )

    asyncio.run(feed())
