"""``python -m core``: see :mod:`core.cli`."""

import sys

from core.cli import console_main

sys.exit(console_main())
