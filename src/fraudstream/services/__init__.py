"""Use cases: what the CLI, the API, the DAGs and the jobs do, composed from the model,
the features and the clients in ``adapters`` (which import nothing from here)."""
