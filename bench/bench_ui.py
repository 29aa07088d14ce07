"""Dashboard timings: slider -> layer table, Home's first render, reopening a stored run.

Run from the repository root:  python bench/bench_ui.py  (prints a table; takes about a minute).
Uses a private CNNLAB_HOME and a small synthetic thin-section set, so it touches nothing else.

1. Slider -> updated layer table: AppTest on the Architecture page (through app.py, as in the
   browser), time of `slider.set_value(v).run()` until the script run has drawn the new table.
2. Home's first render: a fresh Python process, `AppTest.from_file("app.py").run()` -- the first
   script run with cold imports of core/ui (Streamlit itself already imported), then warm reruns;
   plus whether TensorFlow got imported.
3. Reopening a stored run: Diagnostics and Predictions pages for a stored run, cold (Streamlit's
   caches cleared: record JSON and test arrays read from disk) and warm; and the Train button on a
   configuration already stored (worker.submit answering from the run store).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOME = tempfile.mkdtemp(prefix="cnnlab-bench-ui-")
os.environ["CNNLAB_HOME"] = HOME
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(ROOT))
APP = str(ROOT / "app.py")


def stats(xs: list[float]) -> str:
    xs = sorted(xs)
    p90 = xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]
    return f"median {statistics.median(xs) * 1000:7.1f} ms   p90 {p90 * 1000:7.1f} ms   (n={len(xs)})"


PAGE_TIMES: list[float] = []


def time_page_scripts() -> None:
    """Record how long each page script takes (app.py wraps page.run() in errors_shown("drawing this page"))."""
    import contextlib

    import ui.feedback as fb

    real = fb.errors_shown

    @contextlib.contextmanager
    def timed(doing: str = "drawing this part of the page"):
        t = time.perf_counter()
        with real(doing):
            yield
        if doing == "drawing this page":
            PAGE_TIMES.append(time.perf_counter() - t)

    fb.errors_shown = timed


def page_time() -> float:
    """The outermost page run of the last script run (the page's own run_page nests inside it)."""
    value = max(PAGE_TIMES) if PAGE_TIMES else float("nan")
    PAGE_TIMES.clear()
    return value


def home_first_render() -> dict:
    code = f"""
import json, sys, time
sys.path.insert(0, {str(ROOT)!r})
import streamlit
from streamlit.testing.v1 import AppTest
t = time.perf_counter(); at = AppTest.from_file({APP!r}, default_timeout=120).run(); first = time.perf_counter() - t
warm = []
for _ in range(10):
    t = time.perf_counter(); at.run(); warm.append(time.perf_counter() - t)
print(json.dumps({{"first": first, "warm": warm, "tf": "tensorflow" in sys.modules,
                  "exception": [e.value for e in at.exception]}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=dict(os.environ))
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from streamlit.testing.v1 import AppTest

    from core.base.config import ModelConfig, TrainConfig
    from core.models.layer_table import layer_table
    from core.store.runstore import RunStore
    from core.training.experiment import run_experiment
    from synth.__main__ import main as synth

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; CNNLAB_HOME={HOME}\n")

    # 2. Home first (a fresh process, before this one imports TensorFlow).
    h = home_first_render()
    print("Home page")
    print(f"  first render (fresh process, cold core/ui imports): {h['first'] * 1000:7.1f} ms")
    print(f"  rerun:                                             {stats(h['warm'])}")
    print(f"  TensorFlow imported: {h['tf']}   exceptions: {h['exception']}\n")

    # 1. Slider -> layer table.
    time_page_scripts()
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("pages/architecture.py").run()
    times, scripts = [], []
    for i in range(30):
        slider = at.slider(key="arch.blocks")
        PAGE_TIMES.clear()
        t = time.perf_counter()
        slider.set_value(2 if i % 2 else 3).run()
        times.append(time.perf_counter() - t)
        scripts.append(page_time())
        assert not at.exception and at.table
    cfg = ModelConfig()
    n = 2000
    t = time.perf_counter()
    for _ in range(n):
        layer_table(cfg)
    core_us = (time.perf_counter() - t) / n * 1e6
    print("Architecture page: slider moved -> new layer table drawn (whole script run, AppTest)")
    print(f"  AppTest round trip: {stats(times)}")
    print(f"  the page script:    {stats(scripts)}")
    print(f"  of which core.models.layer_table.layer_table: {core_us:.0f} µs\n")

    # 3. A stored run: a small synthetic thin-section set, a small CNN, 3 epochs.
    data = Path(HOME) / "data"
    synth(["--dataset", "thin_sections", "--out", str(data), "--per-class", "30"])
    source = str(data / "thin_sections")
    model, train = ModelConfig(blocks=2, filters=8, dense_units=32), TrainConfig(epochs=3)
    t = time.perf_counter()
    rec = run_experiment(source, model, train, store=RunStore())
    print(f"\n(stored run trained in {time.perf_counter() - t:.1f} s: {rec.label})\n")

    import ui.charts as charts
    import ui.resources as res

    print("Reopening a stored run (a new session opens the page with the run selected)")
    for page in ("pages/diagnostics.py", "pages/predictions.py"):
        cold, warm, cold_s, warm_s = [], [], [], []
        for i in range(6):
            if i % 2 == 0:  # cold: nothing of this run in Streamlit's caches
                res._record.clear()
                res._arrays.clear()
                charts.history_figure.clear()
                charts.confusion_figure.clear()
            at = AppTest.from_file(APP, default_timeout=120)
            at.session_state["run_id"] = rec.run_id
            at.session_state["dataset"] = source
            at.run()
            PAGE_TIMES.clear()
            t = time.perf_counter()
            at.switch_page(page).run()
            (cold if i % 2 == 0 else warm).append(time.perf_counter() - t)
            (cold_s if i % 2 == 0 else warm_s).append(page_time())
            assert not at.exception, [e.value for e in at.exception]
        print(f"  {page:24s} cold: page script {stats(cold_s)}; AppTest round trip {stats(cold)}")
        print(f"  {'':24s} warm: page script {stats(warm_s)}; AppTest round trip {stats(warm)}")

    from core.data import bundled_datasets, clear_cache

    if any(b.name == "thin_sections" for b in bundled_datasets()):
        print("\nData page on the bundled thin_sections (1000 images): decode + prepare, then cached")
        for label, fresh in (("first open", True), ("again", False)):
            if fresh:
                clear_cache()
                res._preparation.clear()
            at = AppTest.from_file(APP, default_timeout=300)
            at.session_state["dataset"] = "thin_sections"
            at.run()
            t = time.perf_counter()
            at.switch_page("pages/data.py").run()
            assert not at.exception
            print(f"  {label:10s} {(time.perf_counter() - t) * 1000:7.0f} ms")

    w = res.worker()
    times = []
    for _ in range(10):
        t = time.perf_counter()
        job = w.submit(source, model, train)
        times.append(time.perf_counter() - t)
        assert job.state == "done" and job.result.cached
    print(f"  Train button on a stored configuration (worker.submit -> cached run): {stats(times)}")


def browser() -> None:
    """The same three, seen from headless Chromium against `streamlit run app.py` (server on this HOME)."""
    import shutil
    import socket
    import urllib.request

    chromium = shutil.which("chromium")
    if chromium is None:
        print("\n(browser timings skipped: chromium not installed)")
        return
    from playwright.sync_api import sync_playwright

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port)],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.2)
        print("\nIn the browser (headless Chromium, fresh server)")
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            for label in ("Home, first visitor after the server starts", "Home, next visitor"):
                page = b.new_page()
                t = time.perf_counter()
                page.goto(url)
                page.get_by_text("The path through the lab").wait_for(timeout=120000)
                print(f"  {label:48s} {(time.perf_counter() - t) * 1000:7.0f} ms to the page's content")
                page.close()
            page = b.new_page(viewport={"width": 1400, "height": 1200})
            page.goto(url + "/architecture")
            page.get_by_text("block3_conv").wait_for(timeout=120000)
            thumb = page.get_by_role("slider").and_(page.locator("[aria-label='Conv → Pool blocks']"))
            times = []
            for i in range(10):
                thumb.focus()
                want = "block3_conv" if i % 2 else "block4_conv"
                t = time.perf_counter()
                thumb.press("ArrowLeft" if i % 2 else "ArrowRight")
                cell = page.get_by_test_id("stTableStyledTable").get_by_text("block4_conv", exact=True)
                cell.wait_for(state="visible" if want == "block4_conv" else "detached", timeout=60000)
                times.append(time.perf_counter() - t)
            print(f"  Architecture: slider key press -> table shows the new block   {stats(times)}")
            for path, marker in (("/diagnostics", "Verdict:"), ("/predictions", "Confusion matrix")):
                t = time.perf_counter()
                page.goto(url + path)
                page.get_by_text(marker).first.wait_for(timeout=120000)
                page.locator(".js-plotly-plot").first.wait_for(timeout=120000)
                ms = (time.perf_counter() - t) * 1000
                print(f"  {path:12s} stored run opened (new page load) -> chart drawn  {ms:7.0f} ms")
            b.close()
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
    browser()
