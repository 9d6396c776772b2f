"""``python -m kubemr``: the same as the ``kubemr`` command."""

from kubemr.cli import main

main()
