"""``python -m core``: the engine from a terminal or a script.

    python -m core summary [model flags] [--json]
    python -m core train --data SOURCE [model flags] [training flags] [--no-cache] [--json]
    python -m core runs [--json]
    python -m core datasets [--json]
    python -m core lab --data SOURCE [--fraction F] [--epochs N] [--json]
    python -m core compare RUN_ID RUN_ID... [--all-keys] [--json]
    python -m core compare --transfer --data SOURCE [--weights W] [--epochs N] [--json]
    python -m core repeat --data SOURCE --seeds K [model and training flags] [--json]
    python -m core sweep --data SOURCE --grid NAME=V1,V2 [--grid NAME=...] | --grid-file F [flags] [--json]
    python -m core export RUN_ID [--code run.py] [--model m.keras] [--history h.csv] [--predictions p.csv]
                                 [--report run.html] [--config c.json]
    python -m core jobs [--limit N] [--json]
    python -m core explain RUN_ID --image PATH [--layer NAME] [--class NAME] --out DIR [--json]
    python -m core health --data SOURCE [--input-size N] [--seed S] [--test-size F] [--val-split F] [--json]
    python -m core embed RUN_ID [--method pca|tsne] [--out embed.png] [--json]
    python -m core saliency RUN_ID --image N [--class NAME] [--method all|M1,M2] [--sanity] [--out maps.png] [--json]
    python -m core maximise RUN_ID --layer NAME --filter F | --class NAME [--steps N] [--seed S] [--out f.png] [--json]
    python -m core lr-find --data SOURCE [model flags] [training flags] [--start LR] [--end LR] [--steps N] [--json]

``lab``, ``compare --transfer``, ``repeat`` and ``sweep`` train each run in its own process, ``--workers N``
at once, or on a Dask cluster with ``--scheduler tcp://host:8786``.

A user's error (a bad flag or value, a dataset that cannot be used, an
impossible architecture, weights that are not there) prints one line on
stderr and exits 2. Anything else is a bug: one line, a hint to rerun with
``--debug`` for the traceback, exit 1. TensorFlow's own log lines never
reach the terminal unless ``--debug`` is given (:func:`console_main`).

Nothing in the engine imports this package: it sits on top of every layer.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
import warnings

from core.base import UserError, plain_message, resource_message, settings
from core.store import RunStore
from core.store.runstore import StoreError

from .commands import COMMANDS
from .parser import EXIT_FAILED, EXIT_USAGE, build_parser

__all__ = ["main", "console_main", "EXIT_USAGE", "EXIT_FAILED"]


NO_STORE = {"summary", "datasets"}  # commands that never touch the run store
# Commands that only read the run store (and `compare` without --transfer).
READ_ONLY = {"runs", "export", "jobs", "explain", "embed", "saliency", "challenge"}
KEEPS_IF_IT_CAN = {"maximise"}  # reads, and keeps its result in the run's folder when the store can be written


def open_store(args) -> RunStore | None:
    """The command's run store: none, read-only (works on a store nobody may write), or writable (checked)."""
    if args.command in NO_STORE:
        return None
    if args.command in READ_ONLY or (args.command == "compare" and not args.transfer):
        return RunStore(readonly=True)
    if args.command in KEEPS_IF_IT_CAN:
        try:
            return RunStore()
        except StoreError:
            return RunStore(readonly=True)  # computed, not kept
    return RunStore()


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (0 ok, 2 the user's error, 1 anything else)."""
    parser = build_parser("cnnlab" if os.path.basename(sys.argv[0]) == "cnnlab" else "python -m core")
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    try:
        settings()  # every CNNLAB_* setting read and checked once, before anything else: a bad one is one line
        return COMMANDS[args.command](args, open_store(args))
    except UserError as exc:
        print(f"{parser.prog} {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # output piped into `head` and the like
        return 0
    except KeyboardInterrupt:
        print("Interrupted; stored runs are untouched.", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        if debug:
            traceback.print_exc()
        out_of_memory = resource_message(exc)
        if out_of_memory:  # TensorFlow's ResourceExhaustedError: the fix is a smaller network
            print(f"{parser.prog} {args.command}: {out_of_memory}", file=sys.stderr)
            return EXIT_USAGE
        print(
            f"{parser.prog} {args.command}: unexpected error ({type(exc).__name__}: {plain_message(exc)}). "
            "Stored runs are untouched; rerun with --debug for the traceback.",
            file=sys.stderr,
        )
        return EXIT_FAILED


def console_main(argv: list[str] | None = None) -> int:
    """:func:`main` for a terminal: TensorFlow's native log lines and Python warnings are kept off stderr.

    TensorFlow's C++ side writes to file descriptor 2 before its log level
    applies (absl's "All log messages before absl::InitializeLog()", oneDNN,
    "Could not find cuda drivers", "failed call to cuInit"), so an environment
    variable is not enough: descriptor 2 is pointed at /dev/null and Python's
    ``sys.stderr`` keeps the real terminal. ``--debug`` keeps everything.
    """
    argv = sys.argv[1:] if argv is None else argv
    if "--debug" in argv:
        return main(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.simplefilter("ignore")
    for name in ("tensorflow", "absl", "keras", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)
    sys.stderr.flush()
    real = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = os.fdopen(real, "w", buffering=1, closefd=True)
    try:
        return main(argv)
    finally:
        sys.stderr.flush()
