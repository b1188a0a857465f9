"""``python -m local``: the whole stack in the foreground until Ctrl-C (what ``make local`` runs).

The stop handler is installed before anything heavy is imported, so a signal that arrives while
the stack is still loading or starting is remembered and honoured once it has started.
"""

import signal
import sys

from local.stopping import StopRequest

stop = StopRequest()
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)

from local.cli import main  # noqa: E402 (after the handler, on purpose)

sys.exit(main(stop))
