"""The measuring process: ``python -m core.jobs.measure HOME PRECISION RUNS STARTED`` (started by
:func:`core.jobs.estimate.calibrate`, never by hand).

It imports what a training process imports before its task (:func:`core.jobs.child.warm_up`: TensorFlow,
Keras, scikit-learn, the threads), so the time from ``STARTED`` (the parent's clock when it started this
process) to then is what a new training process costs before it can build a network; then it measures
the trainings of :func:`core.jobs.estimate.measure` and stores the calibration under ``HOME``. Its own
module, imported by nothing, so that ``-m`` runs it without importing it twice.
"""

import json
import os
import sys
import time

from core.jobs.child import warm_up
from core.jobs.estimate import CalibrationRuns, measure

if __name__ == "__main__":
    if len(sys.argv) != 5:
        print("python -m core.jobs.measure is CNN Lab's speed measurement, started by `estimate`.", file=sys.stderr)
        raise SystemExit(2)
    home, precision, runs, started = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    warm_up()
    measure(home, precision, CalibrationRuns.from_dict(json.loads(runs)), process_seconds=time.time() - started)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip interpreter teardown: TensorFlow's can take seconds
