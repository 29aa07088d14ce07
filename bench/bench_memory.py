"""Memory and time of training on larger datasets: the thin sections at 1x, 4x and 10x.

Usage:
    python bench/bench_memory.py [--scales 1,4,10] [--epochs 3] [--before DIR]

The bundled thin sections (1,000 PNGs) are linked k times into a temporary
folder (copies are fine for memory and time). Each figure comes from a fresh
subprocess, so one measurement's memory never counts in the next:

- baselines without data: (a) TensorFlow alone: import TensorFlow and Keras, build
  and compile the course network, one training step on one batch; (b) the whole
  training below on a tiny copy (20 images per class, 1.2 MB): TensorFlow, Keras,
  scikit-learn, the traced training, validation and prediction functions and
  the pipeline's buffers. The target is checked against (b): what the process
  needs whatever the data, so what is left is what the data cost.
- decode: the first load of the folder into the run store's image cache
  (:mod:`core.data.imagecache`): seconds and peak memory.
- train: load (from the cache), prepare, train the course network ``--epochs``
  epochs (the first epoch includes graph tracing; the fastest later epoch is
  shown, and CPU seconds of the whole training per training image and epoch,
  which other work on a shared machine disturbs less) and score the test set
  in batches; peak resident memory.
- reopen: a new process loading the decoded 10x folder again: seconds.

Peak resident memory is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of the
subprocess (it counts the pages of the memory-mapped images it touched).
Targets (issue 14): at 10x, peak <= TF baseline + 2 x the uint8 data; seconds
per epoch grow no faster than the number of images; reopening < 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_flags  # noqa: E402

CHILD = r"""
import json, os, resource, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
sys.path.insert(0, {root!r})
mode, folder, cache, epochs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
out = {{}}
if mode == "baseline":
    import numpy as np
    from core.base.config import ModelConfig, TrainConfig
    from core.training.fit import compile_model
    from core.models.builder import build_model
    m = build_model(ModelConfig())
    compile_model(m, TrainConfig())
    m.fit(np.zeros((32, 64, 64, 3), "float32"), np.eye(5, dtype="float32")[np.zeros(32, int)], verbose=0)
elif mode in ("decode", "reopen"):
    from core.data import load_dataset
    t = time.perf_counter()
    ds = load_dataset(folder, image_size=64, cache_dir=cache)
    out["seconds"] = time.perf_counter() - t
    out["n"] = len(ds)
    out["data_bytes"] = int(ds.images.nbytes)
    out["memmap"] = type(ds.images).__name__
elif mode == "train":
    import numpy as np
    from core.base.config import ModelConfig, TrainConfig
    from core.data import load_dataset, prepare_data
    from core.training.experiment import model_preprocess
    from core.training.fit import predict_proba
    from core.training.train import train_model
    ds = load_dataset(folder, image_size=64, cache_dir=cache)
    data = prepare_data(ds, seed=42)
    cpu0 = time.process_time()
    res = train_model(ModelConfig(), TrainConfig(epochs=epochs, precision=sys.argv[5]), data, store=None)
    out["cpu_seconds"] = time.process_time() - cpu0
    probs = predict_proba(res.model, data.x_test, preprocess=model_preprocess(ModelConfig()))
    out["epoch_seconds"] = res.epoch_seconds
    out["n"] = len(ds)
    out["n_train"] = len(data.x_train)
    out["test_accuracy"] = float(np.mean(probs.argmax(1) == data.y_test_int))
    out["data_bytes"] = int(ds.images.nbytes)
    out["precision"] = res.extra["precision"]
if mode == "before":  # the engine before issue 14 (--before DIR): float32 copies of every split
    import numpy as np
    from core.base.config import ModelConfig, TrainConfig
    from core.data import load_dataset, prepare_data
    from core.training.fit import predict_proba
    from core.training.train import train_model
    data = prepare_data(load_dataset(folder, image_size=64), seed=42)
    res = train_model(ModelConfig(), TrainConfig(epochs=epochs), data, store=None)
    probs = predict_proba(res.model, data.x_test)
    out["epoch_seconds"] = res.epoch_seconds
out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out["load"] = os.getloadavg()[0]
print("RESULT " + json.dumps(out))
"""


def child(mode: str, folder: Path, cache: Path, epochs: int = 1, precision: str = "auto", root: Path = ROOT) -> dict:
    code = CHILD.format(root=str(root))
    proc = subprocess.run(
        [sys.executable, "-c", code, mode, str(folder), str(cache), str(epochs), precision],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"{mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[7:])


def make_copies(src: Path, dst: Path, k: int, per_class: int | None = None) -> Path:
    """``k`` copies of every image of ``src`` (hard links where possible), same class folders."""
    for cls in sorted(p for p in src.iterdir() if p.is_dir()):
        out = dst / cls.name
        out.mkdir(parents=True, exist_ok=True)
        for f in sorted(cls.iterdir())[:per_class]:
            for i in range(k):
                target = out / f"{f.stem}_{i}{f.suffix}"
                try:
                    os.link(f, target)
                except OSError:
                    shutil.copy2(f, target)
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", default="1,4,10")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--precision", default="auto")
    ap.add_argument(
        "--before",
        type=Path,
        default=None,
        help="the engine before issue 14 (git archive 1f017c1 core): its peak at the largest scale",
    )
    args = ap.parse_args()
    scales = [int(s) for s in args.scales.split(",")]
    print(f"machine: {cpu_flags()}; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    src = ROOT / "sample_data" / "thin_sections"
    with tempfile.TemporaryDirectory(prefix="cnnlab-bench-memory-") as tmp:
        tmp = Path(tmp)
        tf_only = child("baseline", tmp, tmp / "cache")
        print(
            f"baseline (a), TensorFlow alone (course network built, one step): peak {tf_only['peak_mb']:.0f} MB",
            flush=True,
        )
        tiny = make_copies(src, tmp / "tiny", 1, per_class=20)
        child("decode", tiny, tmp / "cache")
        base = child("train", tiny, tmp / "cache", args.epochs, args.precision)
        print(f"baseline (b), the same training on {base['n']} images: peak {base['peak_mb']:.0f} MB", flush=True)
        per_image = {}
        for k in scales:
            folder = make_copies(src, tmp / f"x{k}", k)
            cache = tmp / "cache"
            dec = child("decode", folder, cache)
            tr = child("train", folder, cache, args.epochs, args.precision)
            data_mb = tr["data_bytes"] / 2**20
            epoch = min(tr["epoch_seconds"][1:] or tr["epoch_seconds"])
            per_image[k] = tr["cpu_seconds"] / (tr["n_train"] * args.epochs)
            limit = base["peak_mb"] + 2 * data_mb
            print(
                f"{k:>2}x: {tr['n']} images ({data_mb:.0f} MB uint8); first decode {dec['seconds']:.1f} s, "
                f"peak {dec['peak_mb']:.0f} MB; training ({tr['precision']}): peak {tr['peak_mb']:.0f} MB "
                f"(target <= baseline (b) + 2 x data = {limit:.0f} MB; "
                f"{tr['peak_mb'] - base['peak_mb']:.0f} MB above (b)), {epoch:.2f} s per epoch (fastest after the "
                f"first), {1000 * per_image[k]:.2f} CPU-ms per training image and epoch, test accuracy "
                f"{tr['test_accuracy']:.3f}; "
                f"load {tr['load']:.2f}",
                flush=True,
            )
            if k == max(scales) and args.before is not None:
                old = child("before", folder, cache, args.epochs, root=args.before)
                print(
                    f"    the engine before issue 14 ({args.before}), float32, same data: "
                    f"peak {old['peak_mb']:.0f} MB, {old['epoch_seconds'][-1]:.2f} s per epoch; "
                    f"load {old['load']:.2f}",
                    flush=True,
                )
            if k == max(scales):
                reopen = [child("reopen", folder, cache)["seconds"] for _ in range(3)]
                print(
                    f"reopen the decoded {tr['n']}-image folder in a new process: "
                    f"{', '.join(f'{s:.2f}' for s in reopen)} s (target < 2 s)"
                )
        lo = min(scales)
        for k in scales:
            print(
                f"CPU time per training image at {k}x / at {lo}x: {per_image[k] / per_image[lo]:.2f} "
                "(<= ~1: time grows no faster than the number of images; CPU time, as the machine is shared)"
            )
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())} (machine shared)")


if __name__ == "__main__":
    main()
