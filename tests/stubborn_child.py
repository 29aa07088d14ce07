"""A training process that ignores stop requests (``python -m tests.stubborn_child FD``).

The real child (:mod:`core.jobs.child`, not warmed up ahead of its task), except that a "stop" message is read and
dropped, and every batch takes a while: what a training stuck in a long
epoch looks like to the parent. The worker must kill it after its grace period.
"""

import os
import sys
import time
from multiprocessing.connection import Connection

from core.jobs.child import run_task


def main(fd: int) -> int:
    conn = Connection(fd)
    _, task = conn.recv()
    conn.send(("ready", {"pid": os.getpid(), "threads": 1}))

    def progress(ev):
        conn.send(("progress", ev))
        if ev.kind == "batch":
            while conn.poll():  # read the stop requests, and do nothing about them
                conn.recv()
            time.sleep(0.2)

    conn.send(("result", run_task(task, progress=progress, stop_event=None)))
    return 0


if __name__ == "__main__":
    os._exit(main(int(sys.argv[1])))
