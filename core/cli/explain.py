"""``python -m core explain``: inside a stored run's network for one image (feature maps, Grad-CAM)."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from core.base import ModelConfig, UserError, max_upload_bytes, print_table, read_bounded
from core.data import read_image_bytes
from core.inside import UnknownClassError, UnknownLayerError, UnknownRunError, grad_cam, open_run
from core.inside.pictures import grid_picture, overlay, save_png
from core.models.layer_table import layer_table
from core.store import RunStore

MIN_SIDE = 256  # PNGs are enlarged (nearest neighbour) to at least this many pixels a side


def _spatial_names(cfg: ModelConfig) -> list[str]:
    """The layer names the feature maps can come from, from the layer table (no TensorFlow needed)."""
    names = []
    for row in layer_table(cfg).rows:
        names += [c.name for c in row.children] or ([row.name] if len(row.output_shape) == 3 else [])
    return names


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "image"


def cmd_explain(args: argparse.Namespace, store: RunStore) -> int:
    record = store.get(args.run_id)
    if record is None:
        raise UnknownRunError.of(args.run_id)
    cfg = ModelConfig.from_dict(record.model_config)
    names = _spatial_names(cfg)
    first_conv = next(n for n in names if "conv" in n)
    layer = args.layer or first_conv
    if layer not in names:
        raise UnknownLayerError.of(record.run_id, layer, names)
    classes = list(record.test.get("class_names") or record.data.get("classes") or [])
    if args.class_name is not None and args.class_name not in classes:
        raise UnknownClassError.of(record.run_id, args.class_name, classes)
    path = Path(args.image).expanduser()
    if not path.exists():
        raise UserError(f"No image file at {str(path)!r}: give --image the path of a PNG, JPEG, TIFF or BMP file.")
    data = read_bounded(path, max_upload_bytes(), "a PNG, JPEG, TIFF or BMP file")  # never a device or FIFO
    image = read_image_bytes(data, image_size=cfg.input_size, channels=cfg.channels, name=path.name)
    out = Path(args.out).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = exc.strerror or exc
        raise UserError(f"Cannot write to --out {str(out)!r}: {why}. Pick a folder you can write.") from None

    net = open_run(store, record.run_id)
    info = net.layer(layer)
    maps = net.feature_maps(image, layer)
    cam = grad_cam(net, image, None if args.class_name is None else net.class_index(args.class_name))
    probs = cam.probabilities
    predicted = int(probs.argmax())
    stem = _safe(path.stem)
    files = {
        "feature_maps": str(save_png(grid_picture(maps), out / f"{stem}-{layer}-maps.png", MIN_SIDE)),
        "gradcam": str(
            save_png(overlay(image, cam.heatmap), out / f"{stem}-gradcam-{_safe(cam.class_name)}.png", MIN_SIDE)
        ),
    }
    value_range = [float(maps.min()), float(maps.max())]
    if args.json:
        print(
            json.dumps(
                {
                    "run_id": record.run_id,
                    "label": record.label,
                    "image": str(path),
                    "layer": {**info.to_dict(), "value_range": value_range},
                    "predicted": net.class_names[predicted],
                    "probabilities": {n: float(p) for n, p in zip(net.class_names, probs, strict=True)},
                    "gradcam": cam.to_dict(),
                    "files": files,
                }
            )
        )
        return 0
    shape = "x".join(map(str, info.output_shape))
    print(f"Run {record.run_id}: {record.label}")
    print(f"Image {path} (as the network reads it: {'x'.join(map(str, net.input_shape))})")
    print(f"Predicted: {net.class_names[predicted]} ({probs[predicted]:.1%})")
    print_table(
        [{"class": n, "p": f"{p:.3f}"} for n, p in zip(net.class_names, probs, strict=True)],
        [("class", "Class"), ("p", "Probability")],
    )
    print(
        f"Layer {layer} ({info.type}): output shape {shape}; one unit sees {info.receptive_field}x"
        f"{info.receptive_field} input pixels (jump {info.jump}); values {value_range[0]:.3f} .. "
        f"{value_range[1]:.3f}"
    )
    print(
        f"Grad-CAM for {cam.class_name} ({cam.probability:.1%}) at {cam.layer}"
        + ("" if cam.peak > 0 else ": no positive evidence for this class at that layer (the map is 0)")
    )
    print("Wrote:")
    for f in files.values():
        print(f"  {f}")
    return 0
