"""Geometry of a face: the 62-d params, the 3D morphable model, pixel frames, crops and head-pose angles."""
