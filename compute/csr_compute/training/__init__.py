"""DPO training helpers: the preference data set, trainer callbacks (progress, metrics.jsonl), checkpoints."""
