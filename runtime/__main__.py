"""``python -m rtrun`` is the ``rtrun`` command."""

import sys

from ._cli import main

sys.exit(main())
