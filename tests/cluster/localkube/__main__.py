"""``python -m localkube up|down|status|build|agent``: the harness's command line."""

from __future__ import annotations

import argparse
import sys

from localkube import agent, build, cluster, layout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localkube", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="build .cluster/bin (localkube, helm, kwok) unless current")
    commands.add_parser("up", help="start (or find) the cluster, write .cluster/kubeconfig")
    commands.add_parser("down", help="stop everything; fail if anything is left behind")
    commands.add_parser("status", help="what runs, with memory per component")
    node_agent = commands.add_parser("agent", help="(internal) run the node agent")
    node_agent.add_argument("--server", required=True)
    node_agent.add_argument("--nodes", required=True)
    options = parser.parse_args(argv)
    paths = layout.Layout.default()
    if options.command == "build":
        built = build.build(paths)
        print(f"localkube: binaries in {paths.bin} {'built' if built else 'up to date'}")
    elif options.command == "up":
        cluster.up(paths)
    elif options.command == "down":
        stopped = cluster.down(paths)
        print("localkube: stopped " + (", ".join(stopped) if stopped else "nothing (none running)"))
    elif options.command == "status":
        print(cluster.status(paths))
    elif options.command == "agent":
        agent.main(paths, options.server, options.nodes.split(","))
    return 0


if __name__ == "__main__":
    sys.exit(main())
