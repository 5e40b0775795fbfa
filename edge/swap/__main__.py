"""``python -m maskipy.edge.swap``: the bundle manager, as ``maskipy-edge bundle``."""

import sys

from .cli import main

sys.exit(main())
