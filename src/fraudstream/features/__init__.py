"""Features declared once, as data, and computed by pure incremental per-entity functions.

``catalogue`` fixes names, windows and order; ``card``, ``merchant`` and
``transaction`` hold the update functions; ``vector`` glues them into one
feature vector; ``replay`` builds offline training sets by replaying history
through exactly those functions.
"""
