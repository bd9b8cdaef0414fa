"""The pipeline: declarations, run specs, the run store, sweeps, and making what is missing.

Layers: core <- theory, empirics <- pipeline <- paper_figures, verify."""
