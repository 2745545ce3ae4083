"""``python -m vbprune``: the ``vbprune`` command."""

import sys

from .cli import main

sys.exit(main())
