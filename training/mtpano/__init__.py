"""The label-free MTPano training pipeline (seed paper 000, Sec. 3.1, 3.2.3, 4.1, appendix A). docs/TRAINING.md."""
