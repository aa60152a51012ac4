"""Training: configs and shipped recipes, losses, the trainer, DDP helpers and the resume check."""
