"""``python -m core embed``: a stored run's test images in its penultimate layer's feature space (PCA or t-SNE)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.base import UserError, plural
from core.inside import embed_run
from core.inside.pictures import save_png, scatter_picture
from core.store import RunStore


def _picture_path(out: str) -> Path:
    path = Path(out).expanduser()
    if path.suffix.lower() != ".png":
        raise UserError(f"--out names the picture to write, a .png file. Got {out!r} instead.")
    if path.is_dir():
        raise UserError(f"--out {out!r} is a folder; give the path of a .png file to write.")
    if not path.parent.is_dir():
        raise UserError(f"Cannot write --out {out!r}: the folder {str(path.parent)!r} does not exist.")
    return path


def _counted(em) -> str:
    """ "200 test images" or "200 test images and 640 training images"."""
    n_train = len(em.labels) - em.n_test
    return plural(em.n_test, "test image") + (f" and {plural(n_train, 'training image')}" if n_train else "")


def cmd_embed(args: argparse.Namespace, store: RunStore) -> int:
    out = _picture_path(args.out) if args.out else None  # checked before the network is opened
    em = embed_run(store, args.run_id, args.method, with_train=args.train_images)
    record = store.get(args.run_id)
    written = None
    if out is not None:
        picture = scatter_picture(
            em.coords,
            em.labels,
            em.wrong & em.is_test,
            em.class_names,
            title=f"{em.method_name} of the {em.layer} layer, {_counted(em)}, run {em.run_id}",
            axes=em.axis_titles(),
            faded=~em.is_test,
        )
        try:
            written = str(save_png(picture, out))
        except OSError as exc:
            raise UserError(
                f"Cannot write --out {args.out!r}: {exc.strerror or exc}. Pick a file you can write."
            ) from None
    if args.json:
        print(json.dumps({**em.to_dict(), "label": record.label, "file": written}))
        return 0
    wrong = len(em.mistakes)
    print(f"Run {em.run_id}: {record.label}")
    print(
        f"{em.method_name} of the {em.layer} layer ({em.units} numbers per image) for {_counted(em)}; "
        f"{plural(wrong, 'test image')} misclassified."
    )
    if em.explained is not None:
        print(f"The picture's two axes show {sum(em.explained):.0%} of the features' variance.")
    print(em.sentence())
    if em.knn_accuracy_2d is not None:
        print(
            f"In the flat picture itself, {plural(em.k, 'nearest neighbour')} are right for {em.knn_accuracy_2d:.0%}."
        )
    if written:
        print(f"Wrote {written}")
    return 0
