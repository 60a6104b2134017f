"""Run a command against the test platform: ``python -m tests.platform_env CMD ...``.

The test sessions' platform has its own state folder and ports (``tests/conftest.py``,
shifted by ``FRAUDSTREAM_TEST_PORT_OFFSET``); a command run by hand needs the same
environment, or it looks at the default platform's ports. ``make test-platform-down``
stops a platform that ``FRAUDSTREAM_TEST_KEEP_PLATFORM=1`` kept.
"""

from __future__ import annotations

import os
import sys

from tests.conftest import TEST_PLATFORM_ENV


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: python -m tests.platform_env COMMAND [ARG ...]")
    os.execvpe(argv[0], argv, {**os.environ, **TEST_PLATFORM_ENV})  # noqa: S606 (a wrapper)


if __name__ == "__main__":
    main(sys.argv[1:])
