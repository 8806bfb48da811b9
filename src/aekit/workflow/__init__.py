"""Whole-run workflows above the families and reports: train a run directory end to end."""
