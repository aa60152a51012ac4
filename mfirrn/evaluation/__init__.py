"""Evaluation: the AFLW2000-3D benchmark, landmark metrics, head pose, dense 3D error and the paper's reports."""
