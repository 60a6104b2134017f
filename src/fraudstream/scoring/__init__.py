"""The streaming scorer: card state in Spark, merchant state, vectorised scoring, sinks."""
