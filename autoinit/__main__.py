"""``python -m autoinit``: the same command line as ``autoinit``."""

import sys

from autoinit.cli import main

sys.exit(main())
