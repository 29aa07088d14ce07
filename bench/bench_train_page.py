"""Press -> first batch as a student sees it: a real browser on the Train page of a real server.

Run from the repository root (one line; it prints everything RESULTS.md needs):

    python bench/bench_train_page.py [--presses 10] [--gap 8] [--epochs 3] [--first-now] [--root DIR [--root DIR2]]

Starts ``streamlit run app.py`` on 127.0.0.1 (a free port, a private CNNLAB_HOME, the served checkout's
``.streamlit/config.toml``) and headless Chromium (Debian's ``chromium``, driven by playwright), and stops both at
the end. The browser opens the Train page with the defaults (the course network on the bundled thin_sections),
waits until the server has measured its training speed (once per machine: "Measuring..." gone) and its warm
training process has had time to get ready, then, ``--presses`` times: types a new seed (so the press trains a
new configuration, not the stored run), presses **Train**, and waits for the job to end and ``--gap`` seconds.

What is timed is in the browser itself (``performance.now()``, no round trip through playwright): from the click
on the button to the first moment the page's progress bar reads "batch N/M" (the first batch's progress, what
the student waits for), then to the first "epoch 2/" (the first epoch done) and to the progress bar's end.
``--first-now`` presses the first time as soon as the page has drawn, before the warm process is ready (a
student who presses at once after the server started; the speed measurement then runs beside it);
``--home-first S`` opens Home first and the Train page S seconds later (a student who reads Home first).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.bench_load import free_port, wait_healthy  # noqa: E402
from bench.machine import cpu_flags  # noqa: E402

LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WAIT_MS = 180_000

# Installed before the page's own scripts: stamps the click on "Train" and the progress bar's first texts.
WATCH = r"""
window.__cl = {press: null, batch: null, epoch2: null, done: null, texts: []};
document.addEventListener('click', (e) => {
  const b = e.target.closest('button');
  if (b && /(^|\s)Train$/.test(b.innerText.trim())) {  // an icon's name may come first
    window.__cl = {press: performance.now(), batch: null, epoch2: null, done: null, texts: []};
  }
}, true);
new MutationObserver(() => {
  const c = window.__cl;
  if (c.press === null || c.done !== null) return;
  const bars = document.querySelectorAll('[data-testid="stProgress"]');
  let text = '';
  bars.forEach((el) => { text += el.innerText + ' '; });
  const where = text.trim().split(' — ').pop();  // "epoch 1/3 · batch 4/20"
  if (c.texts.length < 40 && where && (c.texts.length === 0 || c.texts[c.texts.length - 1][1] !== where)) {
    c.texts.push([Math.round(performance.now() - c.press), where]);
  }
  if (c.batch === null && /batch [1-9][0-9]*\//.test(text)) c.batch = performance.now();
  if (c.epoch2 === null && /epoch [2-9][0-9]*\//.test(text)) c.epoch2 = performance.now();
  if (c.batch !== null && bars.length === 0) c.done = performance.now();
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(q * (len(xs) - 1)))))]


def set_epochs(page, epochs: int) -> None:
    """The Epochs slider to ``epochs`` with the keyboard (Home, then Right), as a student could."""
    thumb = page.get_by_role("slider").and_(page.locator("[aria-label='Epochs']"))
    for _ in range(5):  # a key pressed while the page reruns can be lost: try again until the slider says so
        thumb.focus()
        thumb.press("Home")  # the slider starts at 1 epoch
        for _ in range(epochs - 1):
            thumb.press("ArrowRight")
        thumb.blur()
        page.wait_for_timeout(1500)
        if thumb.get_attribute("aria-valuetext") == str(epochs):
            return
    raise RuntimeError(f"could not set the Epochs slider to {epochs}")


def press(page, seed: int) -> dict:
    box = page.get_by_role("spinbutton", name="Seed").first
    box.fill(str(seed))
    box.press("Enter")
    page.wait_for_timeout(1500)  # the rerun after the new seed settles (the estimate redraws)
    load = os.getloadavg()[0]
    page.get_by_role("button", name="Train", exact=True).click()
    page.wait_for_function("window.__cl.press !== null && window.__cl.done !== null", timeout=WAIT_MS, polling=200)
    c = page.evaluate("window.__cl")
    return {
        "batch": (c["batch"] - c["press"]) / 1000,
        "epoch": (c["epoch2"] - c["press"]) / 1000 if c["epoch2"] else float("nan"),
        "done": (c["done"] - c["press"]) / 1000,
        "texts": ", ".join(f"{ms / 1000:.2f} s {t!r}" for ms, t in c["texts"][:4]),
        "load": load,
    }


def serve(root: Path) -> tuple[int, subprocess.Popen, object]:
    """``streamlit run app.py`` of ``root`` on a free port with a private CNNLAB_HOME: its port, process and log."""
    port = free_port()
    home = tempfile.mkdtemp(prefix="cnnlab-bench-page-")
    env = {**os.environ, "CNNLAB_HOME": home, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("CNNLAB_DATA_ROOTS", None)
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1"]
    cmd += ["--server.port", str(port), "--server.headless", "true"]
    log = open(Path(home) / "server.log", "w")
    return port, subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT), log


def summary(name: str, rows: list[dict]) -> None:
    xs = [r["batch"] for r in rows]
    print(
        f"{name}: press -> first batch shown: median {statistics.median(xs):.2f} s, p90 {pct(xs, 0.9):.2f} s, "
        f"min-max {min(xs):.2f}-{max(xs):.2f} s (n={len(xs)}); presses 2-{len(xs)}: median "
        f"{statistics.median(xs[1:]):.2f} s; first epoch shown: median "
        f"{statistics.median(r['epoch'] for r in rows):.2f} s; training done: median "
        f"{statistics.median(r['done'] for r in rows):.2f} s"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presses", type=int, default=10)
    ap.add_argument("--gap", type=float, default=8.0, help="seconds between a training's end and the next press")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--ready", type=float, default=20.0, help="seconds to give the warm process before the first press")
    ap.add_argument("--first-now", action="store_true", help="press the first time as soon as the page has drawn")
    ap.add_argument(
        "--home-first",
        type=float,
        default=None,
        metavar="SECONDS",
        help="open the server's Home page first and go to Train after SECONDS (a student who reads Home, then "
        "trains at once: with --first-now, the first press on a server that has just started)",
    )
    ap.add_argument(
        "--root",
        action="append",
        help="a checkout whose app.py is served (default: this one); given twice, both are served and pressed "
        "in turn (a before/after comparison under the same load: `git worktree add /tmp/before <commit>`)",
    )
    args = ap.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("Chromium is not installed (apt-get install -y chromium chromium-driver)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    roots = [Path(r).resolve() for r in (args.root or [str(ROOT)])]
    servers = [serve(root) for root in roots]
    rows: dict[Path, list[dict]] = {root: [] for root in roots}
    try:
        for port, proc, _ in servers:
            wait_healthy(port, proc)
        print(f"Date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; machine: {cpu_flags()}; Python {sys.version.split()[0]}")
        for root in roots:
            commit = subprocess.run(
                ["git", "-C", str(root), "log", "-1", "--format=%h %s"], capture_output=True, text=True
            )
            print(f"Served: {root} at {commit.stdout.strip()[:90]}")
        print(f"Load average before: {tuple(round(x, 2) for x in os.getloadavg())}")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
            pages = []
            opened = time.time()
            for port, _, _ in servers:
                url = f"http://127.0.0.1:{port}"
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.add_init_script(WATCH)
                if args.home_first is not None:
                    page.goto(url)
                    page.get_by_role("heading", name="CNN Lab").first.wait_for(timeout=WAIT_MS)
                    time.sleep(args.home_first)
                page.goto(f"{url}/train")
                page.get_by_role("button", name="Train", exact=True).wait_for(timeout=WAIT_MS)
                set_epochs(page, args.epochs)
                pages.append(page)
            if not args.first_now:
                for page in pages:
                    page.get_by_text("Measuring this server's training speed").wait_for(
                        state="detached", timeout=WAIT_MS
                    )
                time.sleep(max(0.0, args.ready - (time.time() - opened)))
            print(f"Train page drawn; first press {time.time() - opened:.1f} s after it was opened")
            for i in range(args.presses):
                for root, page in zip(roots, pages, strict=True):
                    r = press(page, 1000 + i)
                    rows[root].append(r)
                    print(
                        f"{root.name} press {i + 1}: first batch shown {r['batch']:.2f} s, "
                        f"first epoch {r['epoch']:.2f} s, done {r['done']:.2f} s; load {r['load']:.2f}; "
                        f"the bar read: {r['texts']}",
                        flush=True,
                    )
                    time.sleep(args.gap)
            browser.close()
        for root in roots:
            summary(str(root), rows[root])
        print(f"Load average after: {tuple(round(x, 2) for x in os.getloadavg())}")
        return 0
    finally:
        for _, proc, log in servers:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


if __name__ == "__main__":
    sys.exit(main())
