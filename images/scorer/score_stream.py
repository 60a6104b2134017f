"""Spark's Python main file for the scorer: runs `fraudstream <arguments>` inside spark-submit.

The SparkApplication passes `score-stream --checkpoint s3a://...` as its arguments; the command
itself arrives with the scorer's issue. spark-submit needs a `.py` file, not a console script.
"""

from fraudstream.cli import main

if __name__ == "__main__":
    main()
