"""Whole-run workflows above the families: saving and loading fitted models as run directories."""
