"""Driving frames: one record type, read from aiMotive folders, mmdet3d info files
or the synthetic generator."""
