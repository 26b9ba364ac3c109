"""ceal-pipeline: Compute-Efficient Active Learning for 3D detection data."""

__version__ = "0.1.0"
