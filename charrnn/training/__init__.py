"""Training: the loop, its schedule, evaluation, checkpoints and resume; torchrun."""
