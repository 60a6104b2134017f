"""What the fraudstream DAGs share: where and how a task runs.

Importable without the fraudstream package: the Airflow environment (its own virtualenv
locally, the Airflow image on Kubernetes) only runs the project's CLI, never imports it.
"""
