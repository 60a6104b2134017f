"""The scorer's outputs, one module per sink, all behind ``sinks.base.Sink``."""
