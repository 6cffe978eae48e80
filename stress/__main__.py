"""``python -I -m poolcheck``: the ``poolcheck`` command (``-I`` keeps the current folder,
which may hold a learner's ``poolcheck.py``, off ``sys.path``)."""

import sys

from poolcheck.app.cli import main

sys.exit(main())
