"""The library: data, models, losses, metrics, the training loop, inference and files. Stages call it."""
