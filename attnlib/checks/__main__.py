"""``python -m attnlib.checks``: list every checker, widget and viz function, and where the book uses it.

See :mod:`attnlib.catalog`.
"""

import sys

from attnlib.catalog import main

sys.exit(main())
