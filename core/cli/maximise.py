"""``python -m core maximise``: what a filter of a stored run (or a class) wants to see, grown from noise."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from core.base import UserError
from core.inside import default_settings, maximise_run, open_run
from core.inside.pictures import save_png
from core.store import RunStore

from .embed import _picture_path

MIN_SIDE = 256  # the PNG is enlarged (nearest neighbour) to at least this many pixels a side


def _class_index(net, name: str) -> int:
    """A class named as the run names it; a number is its index when no class has that name."""
    if name not in net.class_names and name.isdigit():
        return int(name)
    return net.class_index(name)  # UnknownClassError lists the classes


def _progress(step: int, steps: int) -> None:
    if step == steps or step % 10 == 0:
        print(f"\rstep {step} of {steps}", end="\n" if step == steps else "", file=sys.stderr, flush=True)


def cmd_maximise(args: argparse.Namespace, store: RunStore) -> int:
    if args.class_name is None and (args.layer is None or args.filter is None):
        raise UserError(
            "Name a convolution with --layer and one of its filters with --filter, or a class with --class."
        )
    if args.class_name is not None and (args.layer is not None or args.filter is not None):
        raise UserError("Give --class, or --layer with --filter, not both.")
    out = _picture_path(args.out) if args.out else None  # checked before the network is opened
    net = open_run(store, args.run_id)
    settings = default_settings(net, seed=args.seed)
    if args.steps is not None:
        settings = replace(settings, steps=args.steps)
    class_index = None if args.class_name is None else _class_index(net, args.class_name)
    result = maximise_run(
        store,
        args.run_id,
        args.layer,
        args.filter,
        class_index,
        settings,
        progress=_progress if sys.stderr.isatty() and not args.json else None,
        net=net,
    )
    written = None
    if out is not None:
        try:
            written = str(save_png(result.image, out, min_side=MIN_SIDE))
        except OSError as exc:
            raise UserError(
                f"Cannot write --out {args.out!r}: {exc.strerror or exc}. Pick a file you can write."
            ) from None
    if args.json:
        print(json.dumps({**result.to_dict(with_image=args.with_image), "label": net.record.label, "file": written}))
        return 0
    print(f"Run {result.run_id}: {net.record.label}")
    how = "kept from an earlier request" if result.cached else f"grown in {result.seconds:.1f} s"
    print(f"An image for {result.what}, {how} ({settings.steps} steps from noise, seed {settings.seed}).")
    print(result.sentence())
    if written:
        print(f"Wrote {written}")
    return 0
