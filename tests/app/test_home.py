"""Home: what CNN Lab is, the path through the pages, and what is active; light enough to open in a second."""

import json
import os
import subprocess
import sys

from apphelpers import ROOT, texts


def test_home_without_a_run_explains_the_empty_state(open_page, empty_home, data_dir):
    at = open_page("pages/home.py", dataset=str(data_dir))
    assert not at.exception
    text = texts(at)
    assert "CNN Lab" in text and "The path through the lab" in text
    assert "No run yet: train one on the Train page." in text
    assert f"Folder: {data_dir.name}" in text  # the active dataset
    assert "683,587 parameters" in text  # the course's network, fitted to the dataset's 3 classes
    links = [link.proto.label for link in at.get("page_link")]
    assert links[:5] == ["1 · Data", "2 · Architecture", "3 · Train", "4 · Diagnostics", "5 · Predictions"]


def test_home_names_the_selected_run(open_page, trained, data_dir):
    at = open_page("pages/home.py", dataset=str(data_dir), run_id=trained.run_id)
    assert not at.exception
    text = texts(at)
    assert trained.label in text
    assert f"test accuracy {trained.test['accuracy']:.0%}" in text


PROBE = """
import json, sys, time
sys.path.insert(0, {root!r})
from streamlit.testing.v1 import AppTest
out = {{}}
for page in {pages!r}:
    at = AppTest.from_file({app!r}, default_timeout=120)
    at.session_state["dataset"] = {dataset!r}
    at.run()
    if page != "pages/home.py":
        at.switch_page(page).run()
    out[page] = {{"exception": [e.value for e in at.exception], "tensorflow": "tensorflow" in sys.modules,
                  "keras": "keras" in sys.modules}}
print(json.dumps(out))
"""


def test_pages_that_do_not_train_never_import_tensorflow(tmp_path, data_dir):
    """In a fresh process: Home, Data, Architecture, Diagnostics and Predictions render without TensorFlow."""
    pages = ["pages/home.py", "pages/architecture.py", "pages/diagnostics.py", "pages/predictions.py", "pages/data.py"]
    code = PROBE.format(root=str(ROOT), pages=pages, app=str(ROOT / "app.py"), dataset=str(data_dir))
    env = dict(os.environ, CNNLAB_HOME=str(tmp_path / "home"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for page, seen in result.items():
        assert seen == {"exception": [], "tensorflow": False, "keras": False}, (page, seen)


def test_a_one_epoch_run_is_one_epoch_in_the_sidebar_and_on_home(open_page, private_worker, data_dir):
    from apphelpers import FAST, TINY

    from core.training.experiment import run_experiment

    rec = run_experiment(str(data_dir), TINY, FAST.replace(epochs=1), store=private_worker.store)
    at = open_page("pages/home.py", dataset=str(data_dir), run_id=rec.run_id)
    assert not at.exception
    sidebar = [c.value for c in at.sidebar.caption]
    assert any(c.startswith("1 epoch · best epoch 1") for c in sidebar), sidebar
    # The sidebar's verdict is today's reading of the curves, the one the Diagnostics page shows.
    from core.results.diagnosis import diagnosis_of

    title = diagnosis_of(rec).title
    assert any(c.endswith(f" · {title}") for c in sidebar), (title, sidebar)
    assert "1 epoch · test accuracy" in texts(at) and "1 epochs" not in texts(at)


def test_runs_with_the_same_label_stay_apart_in_the_run_select():
    from ui.sidebar import unique_labels

    labels = unique_labels({"a1": "10:02 · rocks · test 80%", "b2": "10:02 · rocks · test 80%", "c3": "10:05 · x"})
    assert labels == {"a1": "a1 · 10:02 · rocks · test 80%", "b2": "b2 · 10:02 · rocks · test 80%", "c3": "10:05 · x"}
