"""SAP training: scan-video clips from instance-labelled panoramas and the fine-tuning loop (builtin or sam2)."""
