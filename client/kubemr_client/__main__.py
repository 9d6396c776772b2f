"""``python -m kubemr_client``: the ``kubemr`` command with ``submit`` and friends."""

from kubemr_client.cli import main

if __name__ == "__main__":
    main()
