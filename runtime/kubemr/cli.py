"""The ``kubemr`` command line (placeholder until the runtime lands)."""

import sys


def main() -> None:
    sys.exit("kubemr: not built yet")
