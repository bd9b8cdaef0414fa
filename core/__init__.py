"""Shared plumbing: errors, atomic io, device, estimates, grids, AUC. Imports nothing of the project."""
