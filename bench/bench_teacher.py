"""The teacher's view with a class: how long one rerun of the page takes with N students' jobs.

Run from the repository root:  python bench/bench_teacher.py --students 30 --reruns 10
Uses a private CNNLAB_HOME and a small synthetic thin-section set, so it touches nothing else.

One real training (a small CNN, 2 epochs), then every student presses Train on the same settings: each gets a
finished (stored) job of their own with the run's curves, as a class that followed the teacher's link would.
One student's training of another configuration runs meanwhile (live curves, a fragment polling it). Times are
whole script runs through app.py (AppTest, as in the browser), the teacher logged in, compared with the Home
page's rerun under the same load: the page with its curves (six students a page), and with the curves off.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOME = tempfile.mkdtemp(prefix="cnnlab-bench-teacher-")
os.environ["CNNLAB_HOME"] = HOME
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(ROOT))
APP = str(ROOT / "app.py")


def stats(xs: list[float]) -> str:
    xs = sorted(xs)
    p90 = xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]
    return f"median {statistics.median(xs) * 1000:7.1f} ms   p90 {p90 * 1000:7.1f} ms   (n={len(xs)})"


def reruns(at, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t)
        assert not at.exception, [e.value for e in at.exception]
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", type=int, default=30)
    ap.add_argument("--reruns", type=int, default=10)
    args = ap.parse_args()

    from machine import cpu_flags
    from streamlit.testing.v1 import AppTest

    from core.base.config import ModelConfig, TrainConfig
    from core.jobs import get_worker
    from synth.__main__ import main as synth

    print(f"{cpu_flags()}; load average {os.getloadavg()[0]:.1f}; CNNLAB_HOME={HOME}")
    data = Path(HOME) / "data"
    synth(["--dataset", "thin_sections", "--out", str(data), "--per-class", "30"])
    source = str(data / "thin_sections")
    model, train = ModelConfig(input_size=64, blocks=2, filters=8, dense_units=32), TrainConfig(epochs=2)
    worker = get_worker()
    first = worker.submit(source, model, train, owner="user:student00")
    worker.wait(first, timeout=600)
    for i in range(1, args.students):
        worker.submit(source, model, train, owner=f"user:student{i:02d}")  # stored: a finished job each
    live = worker.submit(source, model, train.replace(epochs=200, seed=5), owner="user:student01")
    while not live.snapshot().history.get("loss"):
        time.sleep(0.2)
    print(f"{len(worker.jobs())} jobs of {args.students} students; one training under way\n")

    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["_cnnlab_role"] = "teacher"  # ui.identity.ROLE after the teacher password
    at.secrets["cnnlab"] = {"class_password": "a", "teacher_password": "b"}
    at.run()
    home = reruns(at, args.reruns)
    at.switch_page("pages/teacher.py").run()
    curves = reruns(at, args.reruns)
    charts = len(at.get("plotly_chart"))
    at.toggle(key="teacher.curves").set_value(False).run()
    plain = reruns(at, args.reruns)
    print("Whole script run (app.py + sidebar + page), AppTest, the teacher logged in")
    print(f"  Home page:                          {stats(home)}")
    print(f"  Teacher's view, curves ({charts} charts):  {stats(curves)}")
    print(f"  Teacher's view, curves off:         {stats(plain)}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    worker.stop(live.id, admin=True)
    worker.wait(live, timeout=120)
    worker.close()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
