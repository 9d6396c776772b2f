"""``python -m kubemr``: the same as the ``kubemr`` command (without the client's
commands). A ``run`` starts its fork server first (:func:`kubemr.spawner.start_early`)."""

import sys

from kubemr import spawner

spawner.start_early(sys.argv[1:])

from kubemr.cli import main  # noqa: E402 (after the early start)

main()
