"""The training process: ``python -m core.jobs FD`` (started by :mod:`core.jobs.process`, never by hand).

Its own module, imported by nothing, so that ``-m`` runs it without importing
it twice (runpy warns when the module it runs was imported already, as the
package imports :mod:`core.jobs.child`). What it does is
:func:`core.jobs.child.main`.
"""

import os
import sys

from core.jobs.child import main

if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        print("python -m core.jobs FD is CNN Lab's training process, started by its worker.", file=sys.stderr)
        raise SystemExit(2)
    code = main(int(sys.argv[1]))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip interpreter teardown: TensorFlow's can take seconds and prints noise
