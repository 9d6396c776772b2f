"""The ``kubemr`` console script and ``python -m kubemr_client``: the runtime's commands
with ``submit`` and friends.

A ``kubemr run`` starts its fork server before anything heavy is imported
(:func:`kubemr.spawner.start_early`), so that the server's imports overlap the command's.
"""

import sys

from kubemr import spawner


def main() -> None:
    """The ``kubemr`` console script."""
    spawner.start_early(sys.argv[1:])
    from kubemr_client.cli import main as command  # noqa: PLC0415 (after the early start)

    command()


if __name__ == "__main__":
    main()
