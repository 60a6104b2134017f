"""The streaming scorer's spark-submit main file: ``python jobs/score_stream.py [score options]``.

Thin on purpose: settings come from the environment (``FRAUDSTREAM_*``) and the work is
``fraudstream score`` (see docs/scorer.md). spark-submit needs a ``.py`` main file, not a
console script, which is why this exists beside it. The scorer image ships this file as
``/opt/fraudstream/score_stream.py``, the SparkApplication's ``mainApplicationFile``, whose
arguments are the ``score`` options (``--checkpoint s3a://...`` plus the chart's extra ones).
"""

import sys

from fraudstream.cli import main

if __name__ == "__main__":
    sys.argv = [sys.argv[0], "score", *sys.argv[1:]]
    main()
