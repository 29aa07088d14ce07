"""``python -m core lr-find``: the learning-rate range test of a configuration on a dataset (stored: the same
test twice trains nothing)."""

from __future__ import annotations

import argparse
import json
import sys

from core.base.tables import plural
from core.store import RunStore
from core.training import LRRange, check_submission, find_lr

from .output import progress_printer
from .parser import model_config, train_config


def cmd_lr_find(args: argparse.Namespace, store: RunStore) -> int:
    """One range test in this process (:func:`core.training.lr_find.find_lr`), the model and training flags as
    ``train``'s; the rates from ``--start`` to ``--end`` in ``--steps`` steps."""
    model_cfg, train_cfg = model_config(args), train_config(args)
    lr_range = LRRange(start=args.start, end=args.end, steps=args.steps)  # checked: a bad value is one line
    check_submission(model_cfg, train_cfg)  # before the data is read
    progress = None if args.json else progress_printer(sys.stderr)
    result = find_lr(
        args.data, model_cfg, train_cfg, lr_range, store=store, use_cache=not args.no_cache, progress=progress
    )
    if args.json:
        print(json.dumps(result.as_dict()))
        return 0
    stored = " (stored test, not run again)" if result.cached else ""
    print(f"Learning-rate range test{stored}: {result.label}")
    print(
        f"{plural(len(result.lrs), 'step')} from {result.lrs[0]:.2g} to {result.lrs[-1]:.2g}, "
        f"on {plural(result.extra.get('n_train', 0), 'training image')}, in {result.seconds:.1f} s"
    )
    print(result.sentence())
    s = result.suggestion
    if s.learning_rate is not None:
        print(f"Train with it: python -m core train --data {args.data} ... --learning-rate {s.learning_rate:.2g}")
    return 0
