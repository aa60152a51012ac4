"""``python -m mfirrn.cli``: the ``mfirrn`` command."""

import sys

from mfirrn.cli import main

sys.exit(main())
