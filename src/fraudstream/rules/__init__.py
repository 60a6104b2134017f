"""Declarative fraud rules beside the model: the language, rule sets, decisions, backtests.

A rule set is data (``ruleset``): named lists and rules whose conditions are checked
expressions over the feature catalogue, the transaction contract and the model's ``score``
(``language``; ``values`` holds the missing-value rules, ``functions`` the five functions).
``decision`` turns the fired rules and the model's score into one decision per transaction,
the same way for a batch and for one row; ``backtest`` measures a rule set against labels.
Pure: no I/O beyond reading a rule set file. docs/rules.md is the guide.
"""
