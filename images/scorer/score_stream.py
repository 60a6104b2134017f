"""Spark's Python main file for the scorer: runs `fraudstream <arguments>` inside spark-submit.

The SparkApplication passes `score --checkpoint s3a://...` (plus the chart's extra arguments)
as its arguments; see docs/scorer.md for the options. spark-submit needs a `.py` file, not a
console script.
"""

from fraudstream.cli import main

if __name__ == "__main__":
    main()
