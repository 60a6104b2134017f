"""The HTTP API and the analysts' dashboard (`fraudstream serve`).

``app.create_app`` builds the FastAPI application; the model is loaded, the
database pool, online store and alert stream are opened in its lifespan, never
at import time. Routers only wire requests to ``queries`` (Postgres reads and
the verdict write), ``scoring`` (one synchronous score) and ``live`` (the alert
stream from Kafka).
"""
