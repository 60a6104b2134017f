"""Run the streaming scorer: ``python jobs/score_stream.py [fraudstream score options]``.

Thin on purpose: settings come from the environment (``FRAUDSTREAM_*``) and the work is
``fraudstream score`` (see docs/scorer.md). spark-submit needs a ``.py`` main file, which
is why this exists beside the console script; the scorer image ships the same entry
point as ``/opt/fraudstream/score_stream.py``.
"""

import sys

from fraudstream.cli import main

if __name__ == "__main__":
    sys.argv = [sys.argv[0], "score", *sys.argv[1:]]
    main()
