"""The streaming scorer: card state in Spark, merchant book, vectorised scoring, sinks."""
