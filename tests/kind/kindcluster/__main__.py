"""``python -m kindcluster build|up|examples|down|status`` (PYTHONPATH=tests/kind:tests/cluster)."""

from __future__ import annotations

import argparse
import sys

from kindcluster import cluster, engine, examples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kindcluster", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="build (or find cached) the node image and kubemr image")
    commands.add_parser("up", help="build, create the cluster, load the image, install the chart")
    commands.add_parser(
        "examples",
        help="lay .kind/data out for examples/*-job.yaml and apply examples/kind-values.yaml",
    )
    commands.add_parser("down", help="delete the cluster; stop our dockerd; check nothing is left")
    commands.add_parser("status", help="the engine, the cluster's nodes and their memory")
    options = parser.parse_args(argv)
    if options.command == "build":
        ran_before = engine.current() is not None
        try:
            cluster.build()
        finally:
            if not ran_before:
                engine.stop()  # started for the build alone: `up` starts it again in seconds
    elif options.command == "up":
        cluster.up()
    elif options.command == "examples":
        tools = cluster.up()
        work = examples.stage()
        examples.install_values(tools)
        print(f"kind: examples staged in {work}; apply them with kubectl apply -f examples/...")
    elif options.command == "down":
        print("kind: " + cluster.down())
    elif options.command == "status":
        print(cluster.status())
    return 0


if __name__ == "__main__":
    sys.exit(main())
