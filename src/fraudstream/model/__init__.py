"""Training and evaluation, pure: no MLflow, no database; the registry adapter logs the results."""
