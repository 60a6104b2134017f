"""fraudstream: real-time card-fraud detection on Kafka, Spark, XGBoost and MLflow."""

__version__ = "0.1.0"
