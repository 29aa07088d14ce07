"""Thirty browsers against one server: p50/p95 of a slider change and a page switch while a training runs.

Run from the repository root (one line; it prints everything RESULTS.md needs):

    python bench/bench_load.py [--sessions 30] [--rounds 4] [--think 5] [--no-training] [--root DIR]

Starts ``streamlit run app.py`` on 127.0.0.1 (a free port, a private CNNLAB_HOME, the served checkout's
``.streamlit/config.toml``), stops it at the end. ``--root`` serves another checkout's app.py with the
same protocol (a before/after comparison: ``git worktree add /tmp/before <commit>``). No browser: each
session speaks Streamlit's own websocket protocol (``/_stcore/stream``) with the protobuf messages that
ship with Streamlit, as the browser's JavaScript does: a ``BackMsg`` with ``rerun_script`` (a
``ClientState``: the page's script hash, the widget states, a fragment's id for a fragment's rerun)
goes up; ``ForwardMsg``s (``new_session``, ``delta``, ``auto_rerun``, ``script_finished``) come down.

A classroom as README's "A classroom server" sets it up: a class password and a teacher password (a
secrets.toml in the private home, ``--secrets.files``), every session logs in with a name, and a challenge
exists (drawn before the server starts, so the board has something to show).

1. One more tab (a student's) opens the Train page and presses Train (the course's CNN on thin_sections,
   ``--epochs`` epochs through the page's ``?train=`` link), so every measurement below runs while it trains.
2. ``--sessions`` sessions connect together: one is the teacher on the teacher's view, one a student on the
   challenge board, the others students on Architecture. Each of those opens Architecture, then,
   ``--rounds`` times: moves the "Conv -> Pool blocks" slider (timed until the new layer table arrives)
   and switches to Home and back to Architecture (each switch timed until the page's script finished).
   The teacher's view and the board redraw themselves (``st.fragment(run_every=...)``): their sessions
   send those fragment reruns as a browser does, timed, and open their page again every few refreshes
   (a page switch too). A student pauses about ``--think`` seconds (0.5-1.5 x, random) before each
   action; ``--think 0`` sends the next action as soon as the last is answered (a saturation test).
3. Prints p50/p95/max per measurement, errors (exception elements, closed sockets, timeouts) and sessions
   lost, the load average before and after, whether the training was still running at the end, and the
   memory (RSS) of the server process and of its children (the warm training processes): the most seen
   with the sessions connected, just after they left, and once Streamlit has dropped them (it keeps a
   disconnected session ``server.disconnectedSessionTTL`` seconds, 120 by default; a new session
   connecting after that is what makes it let them go).
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

import psutil
import websockets
from streamlit import config as st_config
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.machine import cpu_flags  # noqa: E402

TIMEOUT = 60.0  # seconds a session waits for one answer before it counts as an error
BLOCKS_LABEL = "Conv → Pool blocks"
CLASS_PASSWORD, TEACHER_PASSWORD = "quartz-42", "granite-7"
RERUN_EARLY = ForwardMsg.ScriptFinishedStatus.Value("FINISHED_EARLY_FOR_RERUN")


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
    fragments: dict[str, float] = field(default_factory=dict)  # fragment id -> seconds between its reruns
    texts: list[str] = field(default_factory=list)  # the markdown, headings and alerts of the last run

    async def connect(self) -> None:
        self.ws = await websockets.connect(
            self.url,
            subprotocols=["streamlit"],
            origin=self.origin,
            max_size=None,
            open_timeout=TIMEOUT,
        )

    async def rerun(
        self,
        page: str = "",
        widget: tuple[str, str, object] | None = None,
        until: str = "finished",
        *,
        widgets: list[tuple[str, str, object]] = (),
        query: str = "",
        fragment: str = "",
    ):
        """Send a rerun (of ``page``, with widgets' new values; of one fragment); return seconds until ``until``.

        ``until`` is "finished" (the script run ended; a run cut short by ``st.rerun()`` is followed by the
        next one) or "table" (the layer table's element arrived).
        """
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = query
        cs.page_script_hash = self.pages.get(page, "")
        if fragment:
            cs.fragment_id = fragment
            cs.is_auto_rerun = True
        for wid, kind, value in ([widget] if widget is not None else []) + list(widgets):
            w = cs.widget_states.widgets.add()
            w.id = wid
            if kind == "double_array":
                w.double_array_value.data.extend(value)
            elif kind == "trigger":
                w.trigger_value = True
            elif kind == "string":
                w.string_value = value
        self.progress, self.texts = [], []
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
                elif etype in ("markdown", "heading", "alert"):
                    self.texts.append(getattr(el, etype).body)
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
            elif kind == "new_session":  # a script run starts (again, after st.rerun()): its texts are the ones read
                self.progress, self.texts = [], []
            elif kind == "auto_rerun":
                self.fragments[fm.auto_rerun.fragment_id] = fm.auto_rerun.interval
            elif kind == "script_finished":
                if fm.script_finished == RERUN_EARLY:
                    continue  # st.rerun(): the next run of the script follows on the same request
                done = time.perf_counter() - t0
                if until == "table":
                    if seen_table is None:
                        self.errors.append("the layer table did not arrive")
                        return done
                    return seen_table
                return done


FORM_TEXT = "Enter your name and the password"  # the login form's first line (ui/login.py)
LOGINS_AGAIN: list[str] = []  # sessions whose first login was not taken (the form came back) and typed it again


async def log_in(s: Session, name: str, password: str = CLASS_PASSWORD) -> None:
    """Connect and log in as a browser does: the login form, then a name and the password with "Enter".

    If the form comes back (a fresh server's first script runs are in Streamlit's pages-folder mode until a
    session has run st.navigation, ui/frame.py, so the form's widgets may have other ids by the time it is
    sent), the student types it again, up to twice; each such session is counted and printed.
    """
    await s.connect()
    await s.rerun("")  # the login form
    for _ in range(3):
        try:
            fields = [
                (s.widgets[label], "string", value) for label, value in (("Your name", name), ("Password", password))
            ]
            fields.append((s.widgets["Enter"], "trigger", True))
        except KeyError as exc:
            raise RuntimeError(f"no login form ({exc}); widgets seen: {sorted(s.widgets)}") from None
        await s.rerun("", widgets=fields)
        if not any(t.startswith(FORM_TEXT) for t in s.texts):
            return
        LOGINS_AGAIN.append(name)
    raise RuntimeError(f"{name} could not log in: the form came back three times")


async def one_student(
    url: str,
    origin: str,
    rounds: int,
    samples: dict,
    lost: list,
    think: float,
    name: str,
) -> Session:
    """One student: open Architecture, then ``rounds`` x (slider, Home, Architecture), pausing a random
    0.5-1.5 x ``think`` seconds before each action (0: as fast as the server answers)."""
    s = Session(url, origin)
    rng = random.Random(name)

    async def pause() -> None:
        if think:
            await asyncio.sleep(think * rng.uniform(0.5, 1.5))

    try:
        await pause()
        await log_in(s, name)  # the first page load (Home, after the login form)
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
    return s  # still connected: the caller reads the server's metrics, then closes it


async def watcher(
    url: str,
    origin: str,
    page: str,
    who: str,
    password: str,
    expect: str,
    samples: dict,
    lost: list,
    done: asyncio.Event,
) -> Session:
    """The teacher on the teacher's view, or a student on the board: open the page, then redraw it as the
    browser does (its fragment, every ``run_every`` seconds) until the students are done; open the page again
    every fifth redraw (a page switch)."""
    s = Session(url, origin)
    try:
        await log_in(s, who, password)
        samples[f"{page} page open"].append(await s.rerun(page))
        if not any(expect in t for t in s.texts):
            s.errors.append(f"the {page} page did not show {expect!r}: {s.texts[:4]}")
        n = 0
        while not done.is_set():
            frags = dict(s.fragments)
            wait = min(frags.values(), default=5.0)
            try:
                await asyncio.wait_for(done.wait(), wait)
                break
            except TimeoutError:
                pass
            n += 1
            if n % 5 == 0 or not frags:
                s.fragments.clear()
                samples[f"{page} page open"].append(await s.rerun(page))
            else:
                frag = min(frags, key=frags.get)
                samples[f"{page} live redraw"].append(await s.rerun(page, fragment=frag))
    except (TimeoutError, websockets.ConnectionClosed, OSError) as exc:
        lost.append(f"{page}: {type(exc).__name__}: {exc}")
    finally:
        if s.ws is not None:
            await s.ws.close()
    return s


async def start_training(url: str, origin: str, epochs: int) -> Session:
    """A student's tab presses Train on the Train page (the course CNN on thin_sections, ``epochs`` epochs)."""
    s = Session(url, origin)
    await log_in(s, "trainer")
    query = f"train=epochs:{epochs}"
    await s.rerun("train", query=query)
    button = s.widgets.get("Train")
    if button is None:
        raise RuntimeError(f"no Train button; widgets seen: {sorted(s.widgets)}")
    await s.rerun("train", (button, "trigger", True), query=query)
    return s


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


async def training_text(trainer: Session | None) -> str:
    """What the Train page says about the training now (its progress bar), or "no training"."""
    if trainer is None:
        return "no training"
    await trainer.rerun("train")
    return next(
        (t for t in trainer.progress if "Training" in t),
        "not training: " + "; ".join(trainer.progress),
    )


def rss(pid: int) -> tuple[float, float]:
    """Resident memory in MB of the process and of all its children (the warm training processes)."""
    try:
        proc = psutil.Process(pid)
        own = proc.memory_info().rss
        kids = 0
        for child in proc.children(recursive=True):
            try:
                kids += child.memory_info().rss
            except psutil.NoSuchProcess:
                pass
    except psutil.NoSuchProcess:
        return 0.0, 0.0
    return own / 2**20, kids / 2**20


def session_state_sizes(port: int) -> tuple[float, int]:
    """All connected sessions' st.session_state in KB, as Streamlit's own /_stcore/metrics measures it (a recursive
    size, ``server.enableExpensiveMemoryStats``, set for this server: it costs only when the metrics are read), and
    how many sessions are connected."""
    url = f"http://127.0.0.1:{port}/_stcore/metrics?families=cache_memory_bytes&families=active_sessions"
    with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
        text = r.read().decode()
    total, sessions = 0.0, 0
    for line in text.splitlines():
        if line.startswith('cache_memory_bytes{cache_type="st_session_state"'):
            total += float(line.rsplit(" ", 1)[1]) / 1024
        elif line.startswith("active_sessions "):
            sessions = int(float(line.rsplit(" ", 1)[1]))
    return total, sessions


async def sample_memory(pid: int, into: list, stop: asyncio.Event) -> None:
    while not stop.is_set():
        into.append(rss(pid))
        try:
            await asyncio.wait_for(stop.wait(), 2.0)
        except TimeoutError:
            pass


async def bench(
    port: int,
    pid: int,
    sessions: int,
    rounds: int,
    train: bool,
    think: float,
    epochs: int,
    ttl: float,
) -> dict:
    url, origin = f"ws://127.0.0.1:{port}/_stcore/stream", f"http://127.0.0.1:{port}"
    memory: dict[str, tuple[float, float]] = {"server started, nobody connected": rss(pid)}
    trainer = None
    if train:
        trainer = await start_training(url, origin, epochs)
        await asyncio.sleep(8)  # let the training's process start and the first epochs begin
    before = await training_text(trainer)
    samples: dict[str, list[float]] = {"slider -> layer table": [], "page switch": []}
    for page in ("teacher", "board"):
        samples[f"{page} page open"], samples[f"{page} live redraw"] = [], []
    lost: list[str] = []
    students_done, sampled, stop_sampling = asyncio.Event(), [], asyncio.Event()
    sampler = asyncio.create_task(sample_memory(pid, sampled, stop_sampling))
    watchers = [
        asyncio.create_task(
            watcher(
                url,
                origin,
                "teacher",
                "ms stone",
                TEACHER_PASSWORD,
                "Teacher's view",
                samples,
                lost,
                students_done,
            )
        ),
        asyncio.create_task(
            watcher(
                url,
                origin,
                "board",
                "board watcher",
                CLASS_PASSWORD,
                "The best validation accuracy",
                samples,
                lost,
                students_done,
            )
        ),
    ]
    t0 = time.perf_counter()
    n_students = max(1, sessions - len(watchers))
    done = await asyncio.gather(
        *(one_student(url, origin, rounds, samples, lost, think, f"student {i + 1}") for i in range(n_students))
    )
    wall = time.perf_counter() - t0
    sizes = session_state_sizes(port)  # every session still connected
    for s in done:
        if s.ws is not None:
            await s.ws.close()
    students_done.set()
    done += await asyncio.gather(*watchers)
    stop_sampling.set()
    await sampler
    load = os.getloadavg()
    after = await training_text(trainer)  # still running? the trainer's tab reads the Train page's progress
    if trainer is not None:
        await trainer.ws.close()
    top = max(sampled, key=lambda m: m[0], default=(0.0, 0.0))
    memory[f"{sessions} sessions connected (the most seen)"] = (
        top[0],
        max((m[1] for m in sampled), default=0.0),
    )
    await asyncio.sleep(2)
    memory["just after they left"] = rss(pid)
    if ttl >= 0:
        await asyncio.sleep(ttl + 5)  # Streamlit keeps a disconnected session this long ...
        late = Session(url, origin)  # ... and lets the expired ones go when the next session comes and goes
        await late.connect()
        await late.rerun("")
        await late.ws.close()
        await asyncio.sleep(3)
        memory[f"{ttl:g} s (server.disconnectedSessionTTL) + 5 s after they left, one session since"] = rss(pid)
    return {
        "samples": samples,
        "lost": lost,
        "errors": [e for s in done for e in s.errors],
        "wall": wall,
        "load": load,
        "training": (before, after),
        "memory": memory,
        "session_state": sizes,
        "students": n_students,
    }


CHALLENGE = """
from core.lab import ChallengeBoard
from core.store import RunStore, default_home
ChallengeBoard(RunStore(default_home())).create("Thin sections", "thin_sections", brief="The best validation accuracy.")
"""


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
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument(
        "--think",
        type=float,
        default=5.0,
        help="mean seconds a student pauses between actions (0: no pause, a saturation test)",
    )
    ap.add_argument(
        "--no-training",
        action="store_true",
        help="measure without a training (for comparison)",
    )
    ap.add_argument(
        "--epochs",
        type=int,
        default=60,
        help="epochs of the training that runs meanwhile",
    )
    ap.add_argument(
        "--root",
        default=str(ROOT),
        help="the checkout whose app.py is served (default: this one)",
    )
    ap.add_argument(
        "--ttl",
        type=float,
        default=None,
        help="seconds to wait after the sessions left before the last memory reading "
        "(default: server.disconnectedSessionTTL as the served checkout's config sets it; -1: do not wait)",
    )
    args = ap.parse_args()
    root = Path(args.root).resolve()
    if args.ttl is None:
        here = os.getcwd()
        os.chdir(root)  # Streamlit reads .streamlit/config.toml from the folder it is started in
        args.ttl = float(st_config.get_option("server.disconnectedSessionTTL"))
        os.chdir(here)
    port = free_port()
    home = tempfile.mkdtemp(prefix="cnnlab-bench-load-")
    env = {**os.environ, "CNNLAB_HOME": home, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("CNNLAB_DATA_ROOTS", None)
    secrets = Path(home) / "secrets.toml"
    secrets.write_text(f'[cnnlab]\nclass_password = "{CLASS_PASSWORD}"\nteacher_password = "{TEACHER_PASSWORD}"\n')
    challenge = subprocess.run(  # the served checkout's own code draws it, in its own process
        [sys.executable, "-c", CHALLENGE],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    if challenge.returncode:
        print(f"Could not draw the challenge: {challenge.stderr.strip()[-500:]}")
        return 2
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
        "--server.enableExpensiveMemoryStats",
        "true",
        "--secrets.files",
        str(secrets),
    ]
    log = open(Path(home) / "server.log", "w")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(port, proc)
        commit = subprocess.run(
            ["git", "-C", str(root), "log", "-1", "--format=%h %cs %s"],
            capture_output=True,
            text=True,
        )
        print(f"Date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; machine: {cpu_flags()}; Python {sys.version.split()[0]}")
        print(f"Served: {root} at {commit.stdout.strip()[:90]}")
        print(f"Load average before: {tuple(round(x, 2) for x in os.getloadavg())} (1, 5, 15 min; 2 cores shared)")
        print(f"Server: {' '.join(cmd[2:])} (pid {proc.pid}); protocol: Streamlit websocket + protobuf")
        r = asyncio.run(
            bench(
                port,
                proc.pid,
                args.sessions,
                args.rounds,
                not args.no_training,
                args.think,
                args.epochs,
                args.ttl,
            )
        )
        print(
            f"{args.sessions} sessions ({r['students']} students on Architecture/Home, the teacher's view, the board) "
            f"x {args.rounds} rounds, think time {args.think:g} s, in {r['wall']:.1f} s; "
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
        total, connected = r["session_state"]
        print(
            f"  session state of the {connected} connected sessions (Streamlit's metrics): {total:,.0f} KB in all, "
            f"{total / max(1, connected):,.1f} KB each on average"
        )
        print(f"  logins typed again (the form came back): {len(LOGINS_AGAIN)} {LOGINS_AGAIN[:3]}")
        for when, (own, kids) in r["memory"].items():
            print(f"  memory, {when}: server {own:,.0f} MB, its training processes {kids:,.0f} MB")
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
