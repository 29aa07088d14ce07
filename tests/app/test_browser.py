"""A real browser against `streamlit run app.py`: a deep link right after a start, and a tiny model trained end to end.

What AppTest cannot see: the page really loads over a websocket, the first
request after a server start really is served in Streamlit's legacy
pages-folder mode (ui/frame.py), the training fragment really polls, plotly
really draws, and a click on a confusion-matrix cell really selects it.
Screenshots go to test-output/browser/ (gitignored).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from apphelpers import ROOT

pytestmark = pytest.mark.browser

OUT = ROOT / "test-output" / "browser"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(tmp_path, cwd: Path, app: Path):
    """A Streamlit server of ``app`` started in ``cwd`` (where it reads .streamlit/), on a free port: yields its URL."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium chromium-driver): browser test skipped")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed: browser test skipped")
    port = _free_port()
    env = dict(os.environ, CNNLAB_HOME=str(tmp_path / "home"), PYTHONUNBUFFERED="1")
    log = open(tmp_path / "streamlit.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(app),
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
        ],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("streamlit did not start: " + (tmp_path / "streamlit.log").read_text()[-3000:])
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def server(tmp_path, data_dir):
    yield from _serve(tmp_path, ROOT, Path("app.py"))


@pytest.fixture
def classroom_server(tmp_path):
    """The app with a class password: started in a folder whose .streamlit/secrets.toml sets one."""
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text('[cnnlab]\nclass_password = "quartz-42"\n')
    yield from _serve(tmp_path, tmp_path, ROOT / "app.py")


WAIT_MS = 60_000  # how long an expectation waits for the page (a pause, not a time asserted: a loaded CI box is slow)


def _settle(page, timeout: float = 120) -> None:
    """Wait until the script run is over (no "Running..." status, no skeletons)."""
    page.wait_for_selector("[data-testid='stSidebar']", timeout=timeout * 1000)
    deadline = time.time() + timeout
    time.sleep(0.3)  # let a rerun the last action triggered begin
    quiet = 0
    while time.time() < deadline and quiet < 2:  # two quiet looks in a row: the run is over
        busy = (
            page.locator("[data-testid='stStatusWidget']").count() + page.locator("[data-testid='stSkeleton']").count()
        )
        quiet = 0 if busy else quiet + 1
        time.sleep(0.15)


def _shot(page, name: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)


def _slider_to_start(page, label: str, right: int = 0) -> None:
    """Move a slider (or select slider) to its first option, then `right` steps up, by keyboard."""
    thumb = page.get_by_role("slider").and_(page.locator(f"[aria-label='{label}']"))
    thumb.focus()
    thumb.press("Home")
    for _ in range(right):
        thumb.press("ArrowRight")
    thumb.blur()
    _settle(page)


def _go(page, title: str) -> None:
    page.locator("[data-testid='stSidebarNav']").get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=60000)
    _settle(page)


@pytest.mark.parametrize(("path", "title"), [("train", "Train"), ("lab", "Overfitting lab")])
def test_the_first_request_after_a_start_lands_on_the_page_it_asks_for(server, path, title):
    """Thirty browsers reconnecting to /train after the teacher restarts the server: each gets the Train page."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60000)
        try:
            page.goto(f"{server}/{path}")  # the server's first session
            page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=90000)
            _settle(page)
            _shot(page, f"0-first-request-{path}")
            expect(page.get_by_role("heading", name=title, exact=True)).to_have_count(1)
            assert page.url.rstrip("/").endswith(f"/{path}")
            # app.py's frame: its menu, with its sections and titles (not the pages folder's file names) ...
            nav = page.locator("[data-testid='stSidebarNav']")
            for item in ("Home", "Train", "Overfitting lab", "Transfer learning"):
                expect(nav.get_by_text(item, exact=True)).to_be_visible()
            expect(nav.get_by_text("Experiments", exact=True)).to_be_visible()
            # ... and its sidebar; no "Page not found" dialog, no error.
            expect(page.locator("[data-testid='stSidebar']").get_by_text("Dataset", exact=True)).to_be_visible()
            expect(page.get_by_text("Page not found")).to_have_count(0)
            expect(page.locator("[data-testid='stException']")).to_have_count(0)
        finally:
            browser.close()


def test_a_named_student_stays_logged_in_across_a_reload_and_a_new_tab_until_log_out(classroom_server):
    """The login cookie as a browser keeps it: written by the page's script, sent back on a reload and by a new
    tab (st.context.cookies), cleared by Log out (what AppTest, which runs no JavaScript, cannot see)."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)

    url = classroom_server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        context = browser.new_context()
        page = context.new_page()
        page.goto(url)
        page.get_by_role("textbox", name="Your name").fill("  Ada  Lovelace")
        page.get_by_role("textbox", name="Password").fill("quartz-42")
        page.get_by_role("button", name="Enter").click()
        expect(page.get_by_text("Logged in as ada lovelace (student)")).to_be_visible(timeout=60000)
        _settle(page)
        cookie = next(c for c in context.cookies() if c["name"] == "cnnlab_login")
        assert cookie["value"].startswith("v1.") and cookie["sameSite"] == "Strict" and "quartz" not in cookie["value"]
        assert 11 * 3600 < cookie["expires"] - time.time() <= 12 * 3600  # a class day

        page.reload()  # no form: the same student
        expect(page.get_by_text("Logged in as ada lovelace (student)")).to_be_visible(timeout=60000)
        assert page.get_by_role("textbox", name="Password").count() == 0
        tab = context.new_page()
        tab.goto(f"{url}/train")
        expect(tab.get_by_text("Logged in as ada lovelace (student)")).to_be_visible(timeout=60000)
        _shot(tab, "named-student")

        page.get_by_role("button", name="Log out").click()
        expect(page.get_by_role("textbox", name="Your name")).to_be_visible(timeout=60000)
        deadline = time.time() + 10  # the script runs once the page is drawn
        while any(c["name"] == "cnnlab_login" for c in context.cookies()) and time.time() < deadline:
            time.sleep(0.2)
        assert not any(c["name"] == "cnnlab_login" for c in context.cookies())
        page.reload()
        expect(page.get_by_role("textbox", name="Your name")).to_be_visible(timeout=60000)
        browser.close()


def test_a_student_trains_a_tiny_model_end_to_end(server, data_dir):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1500})
        page.set_default_timeout(60000)
        try:
            page.goto(server)
            _settle(page)
            expect(page.get_by_role("heading", name="CNN Lab")).to_be_visible()
            _shot(page, "1-home")

            # Data: use a small folder on the server.
            _go(page, "Data")
            page.get_by_text("Folder on the server", exact=True).click()
            _settle(page)
            page.get_by_label("Path on the server").fill(str(data_dir))
            page.get_by_label("Path on the server").press("Enter")
            _settle(page)
            page.get_by_role("button", name="Use this folder").click()
            _settle(page)
            expect(page.get_by_text("Sample images", exact=True)).to_be_visible()
            expect(page.get_by_text("Step 3: Encode labels (one-hot)")).to_be_visible()
            _shot(page, "2-data")

            # Architecture: the smallest network the sliders allow.
            _go(page, "Architecture")
            _slider_to_start(page, "Input size (pixels)")
            _slider_to_start(page, "Conv → Pool blocks")
            _slider_to_start(page, "Filters in the first block")
            _slider_to_start(page, "Dense units")
            expect(page.get_by_text("block2_conv")).to_have_count(0)
            expect(page.locator("[data-testid='stMetricValue']").first).to_have_text("1,715")
            _shot(page, "3-architecture")

            # Train: 2 epochs, in the background, with live curves.
            _go(page, "Train")
            _slider_to_start(page, "Epochs", right=1)
            page.get_by_role("button", name="Train", exact=True).click()
            page.get_by_text(re.compile(r"^Finished: 2 epochs")).wait_for(timeout=300000)
            _settle(page)
            expect(page.locator(".js-plotly-plot")).to_have_count(1)
            expect(page.get_by_text("Loss (lower is better)")).to_be_visible()
            _shot(page, "4-train")
            # The learning-rate range test of the same settings: a job like a training, then its chart.
            page.get_by_role("button", name=re.compile(r"Find a learning rate")).click()
            page.get_by_text(re.compile(r"^(The smoothed loss falls|The loss did not fall)")).wait_for(timeout=300000)
            _settle(page)
            expect(page.locator(".js-plotly-plot")).to_have_count(2)  # the training's curves and the range test's
            _shot(page, "4-train-lr-find")

            # Diagnostics: the curves and a verdict for the new run (selected in the sidebar).
            _go(page, "Diagnostics")
            expect(page.get_by_text(re.compile(r"^Verdict:"))).to_be_visible()
            expect(page.get_by_text("Accuracy (higher is better)")).to_be_visible()
            _shot(page, "5-diagnostics")

            # Predictions: the confusion matrix; a click on a cell shows its images.
            _go(page, "Predictions")
            expect(page.get_by_text("Confusion matrix", exact=True)).to_be_visible()
            plot = page.locator(".js-plotly-plot").first
            expect(plot.locator(".heatmaplayer")).to_have_count(1)
            caption = page.get_by_text(re.compile(r"^\d+ test images? of "))
            box = plot.locator(".nsewdrag").first.bounding_box()
            k = 3  # classes of the tiny dataset
            for r, c in ((0, 0), (2, 1)):
                x = box["x"] + (c + 0.5) * box["width"] / k
                y = box["y"] + (r + 0.5) * box["height"] / k
                page.mouse.move(x, y)
                page.mouse.click(x, y)
                _settle(page)
                names = ["bright", "dark", "striped"]  # the tiny dataset's classes, sorted
                expect(caption).to_contain_text(f"of {names[r]} predicted as {names[c]}")
            _shot(page, "6-predictions")

            # Calibration, below the galleries: the reliability diagram and its sentence.
            heading = page.get_by_text("Can you trust its confidence?", exact=True).first
            heading.scroll_into_view_if_needed()
            expect(heading).to_be_visible()
            expect(page.get_by_text(re.compile(r"^When the network says \d+-\d+%")).first).to_be_visible()
            _shot(page, "6-predictions-calibration")

            # The held-out images most likely mislabelled (above the calibration), each with its link to Inside.
            heading = page.get_by_text("Most likely mislabelled", exact=True).first
            heading.scroll_into_view_if_needed()
            expect(heading).to_be_visible()
            expect(page.get_by_text(re.compile(r"the network never trained on")).first).to_be_visible()
            _shot(page, "6-predictions-mislabelled")

            # Inside the CNN: a gallery image's link opens its feature maps, the worked convolution, Grad-CAM.
            page.get_by_role("link", name="Inside").first.click()
            _settle(page)
            expect(page.get_by_role("heading", name="Inside the CNN")).to_be_visible()
            expect(page.get_by_text("The network says")).to_be_visible()
            expect(page.get_by_role("tab", name="Grad-CAM: why this class?")).to_be_visible()
            assert page.locator(".js-plotly-plot").count() >= 2  # the probabilities and the feature maps
            _shot(page, "7-inside")
            page.get_by_role("tab", name="A convolution by hand").click()
            _settle(page)
            expect(page.get_by_text(re.compile(r"The network computed"))).to_be_visible()
            _shot(page, "8-inside-worked")
            page.get_by_role("tab", name="Grad-CAM: why this class?").click()
            _settle(page)
            _shot(page, "9-inside-gradcam")
            # Every saliency method on one row, then the sanity check with its verdicts.
            page.get_by_text(re.compile(r"^Compare five ways of explaining")).first.click()
            _settle(page)
            expect(page.get_by_text("Every method on one row").first).to_be_visible()
            page.get_by_text("Randomise the top layers and compare").first.click()
            _settle(page)
            expect(page.get_by_text(re.compile(r"explains the image, not the model")).first).to_be_visible()
            _shot(page, "9-inside-saliency")
            # What a filter wants to see: an image grown from noise by gradient ascent, with its numbers.
            page.get_by_role("tab", name="Learned filters").click()
            _settle(page)
            page.get_by_role("button", name=re.compile(r"What does this filter want to see\?")).click()
            _settle(page)
            expect(page.get_by_text(re.compile(r"^Grown from noise")).first).to_be_visible()
            _shot(page, "10-inside-maximise")
            # All test images in the network's feature space (PCA), with how well the classes separate there.
            page.get_by_role("tab", name="All test images").click()
            _settle(page)
            expect(page.get_by_text("Projection to 2-D")).to_be_visible()
            expect(page.get_by_text(re.compile(r"^Each dot is one of the \d+ test images")).first).to_be_visible()
            _shot(page, "11-inside-embedding")
        finally:
            browser.close()


def test_the_exported_report_opens_offline_without_errors(trained, tmp_path):
    """The HTML report in a real browser with every network request refused: plotly draws its four charts
    (the curves, the confusion matrix and the reliability diagram)."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium chromium-driver): browser test skipped")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed: browser test skipped")
    from playwright.sync_api import sync_playwright

    from core.results.report import report_html
    from core.store.runstore import RunStore
    from core.training import run_calibration

    path = tmp_path / "run.html"
    path.write_text(report_html(trained, run_calibration(RunStore(), trained)), encoding="utf-8")
    errors, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        page = browser.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        def refuse(route):
            requests.append(route.request.url)
            route.abort()

        page.route(re.compile(r"^https?://"), refuse)
        page.goto(path.as_uri())
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30000)
        plots = page.locator(".js-plotly-plot").count()
        heading = page.locator("h1").inner_text()
        _shot(page, "report")
        browser.close()
    assert errors == [] and requests == []
    assert plots == 4 and trained.run_id in heading


@pytest.fixture
def teacher_server(tmp_path):
    """The app with a class and a teacher password (started in a folder whose secrets.toml sets them)."""
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text(
        '[cnnlab]\nclass_password = "quartz-42"\nteacher_password = "granite-7"\n'
    )
    yield from _serve(tmp_path, tmp_path, ROOT / "app.py")


def test_the_board_on_the_projector_is_large_anonymous_and_without_the_sidebar(teacher_server, data_dir, tmp_path):
    """A challenge with two students' entries, as the teacher shows it to the room: projector mode hides the
    sidebar (the students' names) and lists the ranked animals in large type (a screenshot for the record)."""
    from apphelpers import TINY
    from playwright.sync_api import expect, sync_playwright

    from core.base.config import TrainConfig
    from core.lab import Budgets, ChallengeBoard
    from core.store.runstore import RunStore
    from core.training.experiment import run_experiment

    expect.set_options(timeout=WAIT_MS)
    store = RunStore(tmp_path / "home")  # the server's store (CNNLAB_HOME of _serve)
    board = ChallengeBoard(store)
    ch = board.create("Stripes", str(data_dir), Budgets(max_epochs=3), brief="Tell the stripes apart.")
    for owner, seed in (("name:ada", 1), ("name:bo", 2)):
        run = run_experiment(ch.public, TINY, TrainConfig(epochs=2, batch_size=8, seed=seed), store=store)
        board.enter(ch.id, owner, run.run_id)
    animals = [r.name for r in board.board(ch.id)]

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{teacher_server}/board?challenge={ch.id}")
        page.get_by_role("textbox", name="Your name").fill("Ms Stone")
        page.get_by_role("textbox", name="Password").fill("granite-7")
        page.get_by_role("button", name="Enter").click()
        page.get_by_role("heading", name="Challenge board", exact=True).first.wait_for(timeout=60000)
        _settle(page)
        # the teacher's own view: the scores on the hidden images (a column of the table, whose grid is drawn on
        # a canvas: its headers are in the page for screen readers, not visible as text)
        expect(page.get_by_text("Ranked by accuracy on the hidden test images").first).to_be_visible()
        expect(page.locator("th", has_text="Hidden test accuracy").first).to_be_attached()
        expect(page.locator("[data-testid='stDataFrame']").first).to_be_visible()
        _shot(page, "board-teacher")
        page.get_by_text("Projector mode", exact=True).click()  # (no _settle: it waits for the sidebar, now hidden)
        expect(page.get_by_role("heading", name="Stripes", exact=True)).to_be_visible()
        expect(page.get_by_role("heading", name=re.compile(rf"^1\. {animals[0]} · "))).to_be_visible()
        expect(page.locator("[data-testid='stSidebar']")).to_be_hidden()
        body = page.locator("[data-testid='stMain']").inner_text()
        assert "ada" not in body.lower().split() and "bo" not in body.lower().split()
        expect(page.locator("[data-testid='stException']")).to_have_count(0)
        _shot(page, "board-projector")
        browser.close()
