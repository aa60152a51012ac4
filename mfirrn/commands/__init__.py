"""Sub-commands of the ``mfirrn`` CLI (see :mod:`mfirrn.cli`)."""
