"""Benchmarks behind `ceal bench`: each returns one dict of measured figures."""
