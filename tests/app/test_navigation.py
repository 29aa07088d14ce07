"""app.py: the page list, and the sidebar's dataset and run selects that every page shares."""

from apphelpers import ROOT, texts

PAGES = [
    "pages/home.py",
    "pages/data.py",
    "pages/architecture.py",
    "pages/train.py",
    "pages/diagnostics.py",
    "pages/predictions.py",
    "pages/inside.py",
    "pages/lab.py",
    "pages/transfer.py",
    "pages/compare.py",
    "pages/sweep.py",
    "pages/teacher.py",
    "pages/board.py",
]


def test_the_navigation_lists_every_page_and_each_url_is_its_file_name(open_page, empty_home):
    at = open_page("pages/home.py")
    pages = list(at._registered_pages.values())  # what st.navigation registered (AppTest.switch_page uses it)
    assert [p["page_name"] for p in pages] == [
        "Home",
        "Teacher's view",  # an address without a menu entry for anyone but the teacher (app.py, pages/teacher.py)
        "Data",
        "Architecture",
        "Train",
        "Diagnostics",
        "Predictions",
        "Inside the CNN",
        "Overfitting lab",
        "Transfer learning",
        "Compare runs",
        "Sweep",
        "Challenge board",
    ]
    assert sorted(p["script_path"] for p in pages) == sorted(str(p) for p in (ROOT / "pages").glob("*.py"))
    # Streamlit's legacy pages-folder mode only knows file names (ui/frame.py): /train must be pages/train.py.
    urls = {p["script_path"].rsplit("/", 1)[-1]: p["url_pathname"] for p in pages}
    assert urls == {name: name.removesuffix(".py") for name in urls if name != "home.py"} | {"home.py": ""}


def test_a_page_started_on_its_own_re_enters_through_app_py(open_page, trained, monkeypatch):
    """Like the first request after a server start: Streamlit's pages-folder mode runs the page file alone."""
    import ui.frame

    entered = []
    real = ui.frame.runpy.run_path
    monkeypatch.setattr(ui.frame.runpy, "run_path", lambda path, **kw: entered.append(path) or real(path, **kw))
    at = open_page("pages/diagnostics.py", run_id=trained.run_id)
    assert not at.exception
    # AppTest starts every run as a fresh server would (in legacy mode): the page ran alone, then app.py.
    assert entered and entered[-1].endswith("app.py")
    assert at.selectbox(key="run_id").value == trained.run_id  # app.py's sidebar is there
    assert [t.value for t in at.title] == ["Diagnostics"]  # and the page drew once


def test_the_sidebar_selects_survive_page_switches(open_page, trained, staged, data_dir, five_class_dir):
    sources = {str(five_class_dir): "Folder: rocks"}
    at = open_page("pages/home.py", dataset=str(data_dir), sources=sources)
    runs = at.selectbox(key="run_id")
    assert runs.options[0].endswith(staged.label)  # newest first, selected by default
    assert at.session_state["run_id"] == staged.run_id
    runs.set_value(trained.run_id).run()
    at.selectbox(key="dataset").set_value(str(five_class_dir)).run()
    for page in PAGES[1:]:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert at.selectbox(key="run_id").value == trained.run_id, page
        assert at.selectbox(key="dataset").value == str(five_class_dir), page
    assert f"Folder: {data_dir.name}" in at.selectbox(key="dataset").options  # still offered


def test_a_run_that_disappeared_falls_back_to_the_newest(open_page, trained, data_dir):
    at = open_page("pages/diagnostics.py", dataset=str(data_dir), run_id="deleted-run")
    assert not at.exception
    newest = at.selectbox(key="run_id").options[0]
    assert at.session_state["run_id"] != "deleted-run"
    assert at.selectbox(key="run_id").format_func(at.session_state["run_id"]) == newest


def test_every_page_renders_with_no_run_and_no_dataset(open_page, empty_home, monkeypatch):
    import core.data.loading

    monkeypatch.setattr(core.data.loading, "SAMPLE_DATA_DIR", empty_home / "no-samples")
    import ui.resources

    ui.resources.bundled.clear()
    try:
        at = open_page("pages/home.py")
        for page in PAGES:
            at.switch_page(page).run()
            assert not at.exception, (page, [e.value for e in at.exception])
            assert at.session_state["dataset"] is None
            if page in ("pages/lab.py", "pages/transfer.py"):
                assert "No dataset yet" in texts(at), page
            else:
                assert "No run yet" in texts(at) or page in (
                    "pages/data.py",
                    "pages/architecture.py",
                    "pages/teacher.py",
                )
            if page == "pages/teacher.py":  # nobody is the teacher without a login (one person on a laptop)
                assert "This page is for the teacher" in texts(at)
    finally:
        ui.resources.bundled.clear()


def test_an_unexpected_error_is_a_friendly_message_with_details(open_page, trained, monkeypatch):
    import ui.resources

    def broken(run_id):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ui.resources, "record", broken)
    at = open_page("pages/diagnostics.py", run_id=trained.run_id)
    assert not at.exception
    assert any("Something went wrong" in e.value for e in at.error)
    assert "disk on fire" in at.expander[-1].code[0].value  # the details, folded away for the teacher
