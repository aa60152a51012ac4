"""Training: configs, trainer, DDP helpers, the ``mfirrn train`` command."""
