"""The lowest layer: outputs, pure losses, generic network blocks, devices, the lasso solvers."""
