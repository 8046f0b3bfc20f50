"""Evaluation: dense predictions (evaluate.py: metrics via pano_perception.metrics, the paper's tables, per-image
figures) and SAP's promptable segmentation (sap_eval.py: 1-click / 3-click protocol and baselines)."""
