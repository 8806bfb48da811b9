"""The engine: the training loop, checkpoints and run directories. It knows no family."""
