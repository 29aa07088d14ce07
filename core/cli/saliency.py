"""``python -m core saliency``: why a stored run chose a class for one of its test images, by several methods,
and (``--sanity``) whether each map still changes when the network's top layers are random."""

from __future__ import annotations

import argparse
import json

from core.base import UserError, plural, print_table
from core.inside import (
    SALIENCY_METHODS,
    UnknownClassError,
    UnknownRunError,
    open_run,
    saliency,
    sanity_check,
)
from core.inside.pictures import maps_picture, save_png
from core.store import RunStore

from .embed import _picture_path

VERDICTS = {
    "passed": "passed",
    "failed": "failed: explains the image",
    "no map": "no map to compare (no evidence for the class)",
}


def methods_of(text: str) -> list[str]:
    """``--method``: ``all`` or names separated by commas, each a key of SALIENCY_METHODS, in the given order."""
    names = list(SALIENCY_METHODS) if text.strip() == "all" else [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in SALIENCY_METHODS]
    if unknown or not names:
        raise UserError(
            f"Unknown saliency method {unknown[0] if unknown else text!r}: give --method all or some of "
            f"{', '.join(SALIENCY_METHODS)}, separated by commas."
        )
    return list(dict.fromkeys(names))


def _how(m) -> str:
    """One method's settings, in words."""
    s = m.settings
    if m.method == "gradcam":
        return f"at the layer {s['layer']}"
    if m.method == "occlusion":
        return f"a {s['patch']}x{s['patch']} square of the image's mean colour, moved in steps of {s['stride']}"
    if m.method == "smoothgrad":
        copies = plural(s["samples"], "noisy copy", "noisy copies")
        return f"{copies} averaged, noise {s['noise']:.0%} of the range, seed {s['seed']}"
    if m.method == "ig":
        c = m.completeness
        return (
            f"from a black image in {plural(s['steps'], 'step')}; the attributions add up to {c.total:.3f}, "
            f"f(image) - f(black) = {c.difference:.3f} (gap {c.gap:.3f}, {c.relative_gap:.1%})"
        )
    return "the image's own brightness edges (Sobel): reads no weight"


def cmd_saliency(args: argparse.Namespace, store: RunStore) -> int:
    methods = methods_of(args.method)
    out = _picture_path(args.out) if args.out else None  # checked before the network is opened
    record = store.get(args.run_id)
    if record is None:
        raise UnknownRunError.of(args.run_id)
    classes = list(record.test.get("class_names") or record.data.get("classes") or [])
    if args.class_name is not None and args.class_name not in classes:
        raise UnknownClassError.of(record.run_id, args.class_name, classes)
    arrays = store.load_arrays(record.run_id)
    n = len(arrays.get("y_true", []))
    if not n:
        raise UserError(f"Run {record.run_id} has no stored test images to explain.")
    if not 0 <= args.image < n:
        raise UserError(
            f"--image is a test image's number: run {record.run_id} has {plural(n, 'test image')}, "
            f"0..{n - 1}. Got {args.image}."
        )
    image = arrays["test_images"][args.image]
    true = classes[int(arrays["y_true"][args.image])] if classes else None
    net = open_run(store, record.run_id)
    chosen = None if args.class_name is None else net.class_index(args.class_name)
    probs = net.probabilities(image[None])[0]
    maps = {m: saliency(net, image, m, chosen) for m in methods}
    first = next(iter(maps.values()))
    check = sanity_check(net, image, first.class_index, methods, originals=maps) if args.sanity else None
    written = None
    if out is not None:
        rows = [[(maps[m].name, maps[m].heatmap) for m in methods]]
        if check is not None:
            rows.append(
                [
                    (
                        f"{r.name}, random top\nrank corr. {r.correlation:.2f}: {r.verdict}",
                        r.randomised,
                    )
                    for r in check.rows
                ]
            )
        title = f"Run {record.run_id}, test image #{args.image} (true class {true}); maps for {first.class_name}"
        try:
            written = str(save_png(maps_picture(image, rows, title), out))
        except OSError as exc:
            raise UserError(
                f"Cannot write --out {args.out!r}: {exc.strerror or exc}. Pick a file you can write."
            ) from None
    predicted = int(probs.argmax())
    if args.json:
        doc = {
            "run_id": record.run_id,
            "label": record.label,
            "image": args.image,
            "true_class": true,
            "predicted": net.class_names[predicted],
            "probabilities": {c: float(p) for c, p in zip(net.class_names, probs, strict=True)},
            "class": first.class_name,
            "maps": [maps[m].to_dict() for m in methods],
            "sanity": check.to_dict() if check is not None else None,
            "file": written,
        }
        print(json.dumps(doc))
        return 0
    print(f"Run {record.run_id}: {record.label}")
    print(
        f"Test image #{args.image} (true class {true}): the network says {net.class_names[predicted]} "
        f"({probs[predicted]:.1%}); the maps explain {first.class_name} ({probs[first.class_index]:.1%})."
    )
    for m in methods:
        print(f"  {maps[m].name}: {_how(maps[m])}")
    if check is not None:
        print(
            f"\nSanity check: {', '.join(check.layers)} given random weights (seed {check.seed}, a copy: the stored "
            f"network is unchanged); each map computed again and compared by rank correlation "
            f"(passed below {check.threshold:g})."
        )
        print_table(
            [{"m": r.name, "r": f"{r.correlation:.2f}", "v": VERDICTS[r.verdict]} for r in check.rows],
            [("m", "Method"), ("r", "Rank correlation"), ("v", "Verdict")],
        )
        print("A map that does not change when the weights are random explains the image, not the model.")
    if written:
        print(f"Wrote {written}")
    return 0
