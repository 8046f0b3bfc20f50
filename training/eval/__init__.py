"""Evaluation of dense predictions: metrics via pano_perception.metrics, the paper's tables, per-image figures."""
