"""Thirty browsers against one server: p50/p95 of a slider change and a page switch while a training runs.

Run from the repository root:  python bench/bench_load.py [--sessions 30] [--rounds 6]

Starts ``streamlit run app.py`` on 127.0.0.1 (a free port, a private CNNLAB_HOME), stops it at the end.
No browser: each session speaks Streamlit's own websocket protocol (``/_stcore/stream``) with the
protobuf messages that ship with Streamlit, as the browser's JavaScript does: a ``BackMsg`` with
``rerun_script`` (a ``ClientState``: the page's script hash and the widget states) goes up;
``ForwardMsg``s (``new_session``, ``delta``, ``script_finished``) come down. Not the experimental agent
API (``server.enableAgentApi`` exists in 1.67, but it is not what browsers use).

1. One session opens the Train page and presses Train (a real training of the course's CNN on
   thin_sections, 20 epochs), so every measurement below runs while it trains.
2. ``--sessions`` sessions connect together, each opens the Architecture page, then, ``--rounds``
   times: moves the "Conv -> Pool blocks" slider (timed until the new layer table arrives) and
   switches to Home and back to Architecture (each switch timed until the page's script finished).
   A student pauses about ``--think`` seconds (0.5-1.5 x, random) before each action; ``--think 0``
   sends the next action as soon as the last is answered (a saturation test, not a classroom).
3. Prints p50/p95/max per measurement, errors (exception elements, closed sockets, timeouts) and
   sessions lost, the load average, and whether the training was still running at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.machine import cpu_flags  # noqa: E402

TIMEOUT = 60.0  # seconds a session waits for one answer before it counts as an error
BLOCKS_LABEL = "Conv → Pool blocks"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Session:
    """One browser tab: a websocket, the pages' script hashes, the widgets it has seen."""

    url: str
    origin: str
    ws: object = None
    pages: dict[str, str] = field(default_factory=dict)  # url path ("" for home) -> page_script_hash
    widgets: dict[str, str] = field(default_factory=dict)  # label -> widget id
    errors: list[str] = field(default_factory=list)
    progress: list[str] = field(default_factory=list)  # texts of the progress bars of the last run

    async def connect(self) -> None:
        self.ws = await websockets.connect(
            self.url, subprotocols=["streamlit"], origin=self.origin, max_size=None, open_timeout=TIMEOUT
        )

    async def rerun(self, page: str = "", widget: tuple[str, str, object] | None = None, until: str = "finished"):
        """Send a rerun (of ``page``, with one widget's new value); return seconds until ``until`` arrived.

        ``until`` is "finished" (the script run ended) or "table" (the layer table's element arrived).
        """
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = ""
        cs.page_script_hash = self.pages.get(page, "")
        if widget is not None:
            wid, kind, value = widget
            w = cs.widget_states.widgets.add()
            w.id = wid
            if kind == "double_array":
                w.double_array_value.data.extend(value)
            elif kind == "trigger":
                w.trigger_value = True
        self.progress = []
        t0 = time.perf_counter()
        await self.ws.send(msg.SerializeToString())
        seen_table = None
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), TIMEOUT)
            fm = ForwardMsg()
            fm.ParseFromString(raw)
            kind = fm.WhichOneof("type")
            if kind == "navigation":  # st.navigation's pages: url path -> script hash
                self.pages.update({p.url_pathname: p.page_script_hash for p in fm.navigation.app_pages})
                home = next((p for p in fm.navigation.app_pages if p.is_default), None)
                if home is not None:
                    self.pages[""] = home.page_script_hash
            elif kind == "delta" and fm.delta.WhichOneof("type") == "new_element":
                el = fm.delta.new_element
                etype = el.WhichOneof("type")
                if etype == "progress":
                    self.progress.append(el.progress.text)
                if etype == "exception":
                    self.errors.append(f"exception: {el.exception.message[:120]}")
                elif etype in ("table", "arrow_table") and seen_table is None:
                    seen_table = time.perf_counter() - t0
                    if until == "table":
                        pass  # keep reading to the end of the run, so the next request starts clean
                inner = getattr(el, etype, None)
                label = getattr(inner, "label", None)
                wid = getattr(inner, "id", None)
                if label and wid:
                    self.widgets[label] = wid
            elif kind == "script_finished":
                done = time.perf_counter() - t0
                if until == "table":
                    if seen_table is None:
                        self.errors.append("the layer table did not arrive")
                        return done
                    return seen_table
                return done


async def one_student(url: str, origin: str, rounds: int, samples: dict, lost: list, think: float) -> Session:
    """One student: open Architecture, then ``rounds`` x (slider, Home, Architecture), pausing a random
    0.5-1.5 x ``think`` seconds before each action (0: as fast as the server answers)."""
    s = Session(url, origin)
    rng = random.Random(id(s))

    async def pause() -> None:
        if think:
            await asyncio.sleep(think * rng.uniform(0.5, 1.5))

    try:
        await pause()
        await s.connect()
        await s.rerun("")  # the first page load (Home)
        samples["page switch"].append(await s.rerun("architecture"))
        blocks = s.widgets.get(BLOCKS_LABEL)
        if blocks is None:
            s.errors.append("no blocks slider on the Architecture page")
            return s
        for r in range(rounds):
            value = [2.0 if r % 2 == 0 else 3.0]
            await pause()
            samples["slider -> layer table"].append(
                await s.rerun("architecture", (blocks, "double_array", value), until="table")
            )
            await pause()
            samples["page switch"].append(await s.rerun(""))
            await pause()
            samples["page switch"].append(await s.rerun("architecture"))
    except (TimeoutError, websockets.ConnectionClosed, OSError) as exc:
        lost.append(f"{type(exc).__name__}: {exc}")
    finally:
        if s.ws is not None:
            await s.ws.close()
    return s


async def start_training(url: str, origin: str) -> Session:
    """A teacher's tab presses Train on the Train page (the default course CNN on thin_sections)."""
    s = Session(url, origin)
    await s.connect()
    await s.rerun("")
    await s.rerun("train")
    button = s.widgets.get("Train")
    if button is None:
        raise RuntimeError(f"no Train button; widgets seen: {sorted(s.widgets)}")
    await s.rerun("train", (button, "trigger", True))
    return s


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


async def training_text(trainer: Session | None) -> str:
    """What the Train page says about the training now (its progress bar), or "no training"."""
    if trainer is None:
        return "no training"
    await trainer.rerun("train")
    return next((t for t in trainer.progress if "Training" in t), "not training: " + "; ".join(trainer.progress))


async def bench(port: int, sessions: int, rounds: int, train: bool, think: float) -> dict:
    url, origin = f"ws://127.0.0.1:{port}/_stcore/stream", f"http://127.0.0.1:{port}"
    trainer = None
    if train:
        trainer = await start_training(url, origin)
        await asyncio.sleep(8)  # let TensorFlow load and the first epochs start
    before = await training_text(trainer)
    samples: dict[str, list[float]] = {"slider -> layer table": [], "page switch": []}
    lost: list[str] = []
    t0 = time.perf_counter()
    done = await asyncio.gather(*(one_student(url, origin, rounds, samples, lost, think) for _ in range(sessions)))
    wall = time.perf_counter() - t0
    load = os.getloadavg()
    after = await training_text(trainer)  # still running? the trainer's tab reads the Train page's progress
    if trainer is not None:
        await trainer.ws.close()
    return {
        "samples": samples,
        "lost": lost,
        "errors": [e for s in done for e in s.errors],
        "wall": wall,
        "load": load,
        "training": (before, after),
    }


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("streamlit did not become healthy")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument(
        "--think",
        type=float,
        default=5.0,
        help="mean seconds a student pauses between actions (0: no pause, a saturation test)",
    )
    ap.add_argument("--no-training", action="store_true", help="measure without a training (for comparison)")
    args = ap.parse_args()
    port = free_port()
    home = tempfile.mkdtemp(prefix="cnnlab-bench-load-")
    env = {**os.environ, "CNNLAB_HOME": home, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("CNNLAB_DATA_ROOTS", None)
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
    ]
    log = open(Path(home) / "server.log", "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(port, proc)
        print(f"Machine: {cpu_flags()}")
        print(f"Load average before: {os.getloadavg()} (the machine is shared with other work)")
        print(f"Server: {' '.join(cmd[2:])} (pid {proc.pid}); protocol: Streamlit websocket + protobuf")
        r = asyncio.run(bench(port, args.sessions, args.rounds, not args.no_training, args.think))
        print(
            f"{args.sessions} sessions x {args.rounds} rounds, think time {args.think:g} s, in {r['wall']:.1f} s; "
            f"load average at the end: {tuple(round(x, 2) for x in r['load'])}"
        )
        print(f"  training before: {r['training'][0]}")
        print(f"  training after:  {r['training'][1]}")
        for name, xs in r["samples"].items():
            if xs:
                print(
                    f"  {name:24s} p50 {statistics.median(xs) * 1000:7.0f} ms   p95 {pct(xs, 0.95) * 1000:7.0f} ms"
                    f"   max {max(xs) * 1000:7.0f} ms   (n={len(xs)})"
                )
        print(f"  errors: {len(r['errors'])} {r['errors'][:3]}")
        print(f"  sessions lost: {len(r['lost'])} {r['lost'][:3]}")
        return 0 if not r["errors"] and not r["lost"] else 1
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
