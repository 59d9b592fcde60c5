"""DPO training helpers: the preference data set, trainer callbacks, MLflow logging."""
