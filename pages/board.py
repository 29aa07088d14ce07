"""Challenge board: the teacher sets a challenge (data with a hidden test split, budgets, a deadline, a brief);
students train on its images, enter their runs, and see the ranked board, live; a projector mode; CSV export.

What a student sees comes from core.lab.challenge's board for a student (validation numbers only, animal
names) until the teacher reveals the hidden scores; the hidden images' names are never read here.
"""

import datetime as dt

import streamlit as st

from core.data import DataError
from core.jobs import JobTable
from core.lab import BoardRow, Budgets, Challenge, ChallengeBoard, ChallengeError, board_csv
from core.results.compare import val_loss_best_epoch
from ui import charts, identity, jobs, resources, state
from ui.challenges import budget_lines, label
from ui.feedback import empty_state, header, show_error
from ui.frame import run_page

PICK = "board.challenge"
REFRESH_SECONDS = 10  # how often the board looks for new entries


def _board() -> ChallengeBoard:
    return ChallengeBoard(resources.store())


def _budget_fields(prefix: str, now: Budgets) -> tuple:
    """The budgets' inputs in a form (0: no limit); returns Budgets' arguments, in its order."""
    c1, c2, c3, c4 = st.columns(4)
    max_params = c1.number_input(
        "Maximum parameters (0: no limit)", 0, 10**9, now.max_params or 0, step=1000, key=prefix + "params"
    )
    max_epochs = c2.number_input("Maximum epochs (0: no limit)", 0, 500, now.max_epochs or 0, key=prefix + "epochs")
    max_runs = c3.number_input(
        "Trainings per student (0: no limit)",
        0,
        1000,
        now.max_trainings or 0,
        key=prefix + "runs",
        help="How many trainings each student may start on the challenge's images, and runs enter.",
    )
    max_seconds = c4.number_input(
        "Seconds per training (0: no limit)",
        0,
        86400,
        int(now.max_seconds or 0),
        step=10,
        key=prefix + "seconds",
        help="A training that reaches it stops and keeps its best epoch (the server's own limit still holds).",
    )
    return int(max_params) or None, int(max_epochs) or None, int(max_runs) or None, float(max_seconds) or None


def _deadline_fields(prefix: str, now: float | None):
    """The deadline's inputs in a form; returns a function giving the timestamp (None: no deadline)."""
    at = dt.datetime.fromtimestamp(now) if now else None
    d1, d2 = st.columns(2)
    day = d1.date_input("Deadline (optional)", value=at.date() if at else None, key=prefix + "day")
    hour = d2.time_input("Time", value=at.time() if at else dt.time(17, 0), key=prefix + "hour")
    return lambda: dt.datetime.combine(day, hour).timestamp() if day else None


def _create(board: ChallengeBoard) -> None:
    """The teacher's form for a new challenge."""
    bundled = [b.name for b in resources.bundled()]
    with st.form("board.new"):
        title = st.text_input("Title", key="board.title")
        source = st.selectbox("Dataset", bundled, key="board.source")
        folder = st.text_input(
            "Or a folder on the server", key="board.folder", help="A folder of class folders inside the data folders."
        )
        brief = st.text_area("Brief for the students", key="board.brief")
        limits = _budget_fields("board.", Budgets())
        hidden = st.slider("Hidden test images, % of each class", 10, 40, 20, key="board.hidden")
        when = _deadline_fields("board.", None)
        if not st.form_submit_button("Create the challenge", type="primary"):
            return
    try:
        budgets = Budgets(*limits)
        deadline = when()
        with st.spinner("Setting the hidden test images aside..."):
            ch = board.create(
                title, folder.strip() or source, budgets, brief=brief, deadline=deadline, hidden_fraction=hidden / 100
            )
    except (ChallengeError, DataError) as exc:
        show_error(exc)
        return
    st.session_state[PICK] = ch.id
    st.success(f"The challenge '{ch.title}' is on the board.", icon=":material/flag:")


def _edit(board: ChallengeBoard, ch: Challenge) -> None:
    """The teacher's edit of a challenge (its data and hidden images stay) and its deletion, confirmed first."""
    with st.form(f"board.edit.{ch.id}"):
        title = st.text_input("Title", ch.title, key=f"board.edit.{ch.id}.title")
        brief = st.text_area("Brief for the students", ch.brief, key=f"board.edit.{ch.id}.brief")
        limits = _budget_fields(f"board.edit.{ch.id}.", ch.budgets)
        when = _deadline_fields(f"board.edit.{ch.id}.", ch.deadline)
        saved = st.form_submit_button("Save the changes", type="primary")
    if saved:
        try:
            board.update(ch.id, title=title, brief=brief, budgets=Budgets(*limits), deadline=when())
        except ChallengeError as exc:
            show_error(exc)
            return
        st.rerun()
    asked = f"board.delete.{ch.id}"
    if not st.session_state.get(asked):
        st.button("Delete this challenge", key=asked + ".ask", icon=":material/delete:", on_click=_ask, args=(asked,))
        return
    st.warning(
        f"Delete '{ch.title}' and its board? The students' runs stay in the run store; the entries and the hidden "
        "test scores go.",
        icon=":material/delete:",
    )
    c1, c2 = st.columns(2)
    c1.button("Delete it", key=asked + ".yes", type="primary", on_click=_delete, args=(board, ch.id, asked))
    c2.button("Keep it", key=asked + ".no", on_click=st.session_state.pop, args=(asked, None))


def _delete(board: ChallengeBoard, challenge_id: str, asked: str) -> None:
    """The confirmed delete (a callback: the challenge select is drawn again without it)."""
    board.delete(challenge_id)
    for key in (asked, PICK):
        st.session_state.pop(key, None)
    st.query_params.pop("challenge", None)


def _ask(key: str) -> None:
    st.session_state[key] = True


def _pick(challenges: list[Challenge]) -> Challenge:
    ids = [c.id for c in challenges]
    linked = st.query_params.get("challenge")
    if linked in ids and PICK not in st.session_state:
        st.session_state[PICK] = linked  # the teacher's link
    titles = {c.id: c.title for c in challenges}
    chosen = st.selectbox("Challenge", ids, key=PICK, format_func=titles.get)
    st.query_params["challenge"] = chosen
    return next(c for c in challenges if c.id == chosen)


def _settings_check(board: ChallengeBoard, ch: Challenge) -> None:
    """The Architecture and Train pages' settings now, held to the challenge's budgets before anything trains."""
    reasons = board.budget_reasons(ch, state.model_cfg(), state.train_cfg(), jobs.owner())
    if not reasons:
        st.success("Your current settings fit this challenge's budgets.", icon=":material/check:")
    for control, reason in reasons.items():
        page = "architecture" if control == "parameters" else "train"
        st.warning(reason, icon=":material/block:")
        if control != "trainings":
            st.page_link(state.PAGES[page], label=f"Change it on the {page.title()} page")


def _entering(board: ChallengeBoard, ch: Challenge, teacher: bool) -> None:
    """Pick one of your runs on the challenge's images and enter it."""
    owner = jobs.owner()
    runs = [r for r in resources.all_runs() if r["source"] == ch.public]
    if not teacher:
        mine = JobTable(resources.store()).run_ids_of(owner)
        runs = [r for r in runs if r["run_id"] in mine]
    if not runs:
        st.caption("Train a network on this challenge's images (button above), then enter the run here.")
        return
    labels = {r["run_id"]: r["label"] for r in runs}
    c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
    run_id = c1.selectbox("Your run", list(labels), format_func=labels.get, key="board.run")
    if c2.button("Enter this run", key="board.enter", type="primary", disabled=ch.closed()):
        try:
            with st.spinner("Scoring the run on the hidden test images..."):
                entry = board.enter(ch.id, owner, run_id)
        except ChallengeError as exc:
            show_error(exc)
            return
        st.success(
            f"Entered as {entry['name']}. The board ranks by validation accuracy until your teacher reveals the scores."
        )


def _table(rows: list[BoardRow], with_score: bool, with_runs: bool) -> list[dict]:
    out = []
    for r in rows:
        row = {"Rank": r.rank, "Student": r.name, "Validation accuracy": r.val_accuracy}
        if with_score:
            row["Hidden test accuracy"] = r.score
        row |= {"Parameters": r.params, "Epochs": r.epochs, "Training time (s)": round(r.seconds, 1), "Runs": r.entries}
        if with_runs:
            row["Run"] = r.run_id
        out.append(row)
    return out


def _draw_board(challenge_id: str, teacher: bool) -> None:
    board = _board()
    ch = board.get(challenge_id)
    rows = board.board(ch.id, teacher=teacher)
    if not rows:
        st.info("No run entered yet.", icon=":material/info:")
        return
    with_score = rows[0].score is not None
    st.caption(
        "Ranked by accuracy on the hidden test images (ties: fewer parameters)."
        if with_score
        else "Ranked by validation accuracy: the hidden test scores are shown when your teacher reveals them."
    )
    st.dataframe(_table(rows, with_score, teacher), hide_index=True)
    st.download_button(
        "Download the board (CSV)", board_csv(rows), file_name=f"board-{ch.id}.csv", mime="text/csv", key="board.csv"
    )


def _projector(challenge_id: str) -> None:
    board = _board()
    ch = board.get(challenge_id)
    rows = board.board(ch.id, teacher=True, projector=True)  # anonymous, scores only once revealed
    st.markdown(f"# {ch.title}")
    if not rows:
        st.markdown("## No run entered yet.")
        return
    measure = "hidden test accuracy" if rows[0].score is not None else "validation accuracy"
    for r in rows[:10]:
        value = r.score if r.score is not None else r.val_accuracy
        shown = "–" if value is None else f"{value:.1%}"
        st.markdown(f"## {r.rank}. {r.name} · {shown} {measure} · {r.params:,} parameters")


def _differences(board: ChallengeBoard, ch: Challenge) -> None:
    """Once revealed or closed: the settings in which the top runs differ from the class's median run, and their
    curves (ranked as a student's board ranks them)."""
    diff = board.differences(ch.id)
    if diff is None:
        return
    st.subheader("What the top runs did differently")
    heads = [f"{name} (#{rank})" for name, rank in zip(diff["names"], diff["ranks"], strict=True)]
    heads[0] = f"Median run: {heads[0]}"
    if not diff["rows"]:
        st.caption("The top runs used the same settings as the median run: the difference is chance.")
    else:
        table = [
            dict(zip(["Setting", *heads], [row["key"], *map(str, row["values"])], strict=True)) for row in diff["rows"]
        ]
        st.dataframe(table, hide_index=True)
    records = [resources.record(run_id) for run_id in diff["run_ids"]]
    if all(records):
        c1, c2 = st.columns(2)
        for col, metric in ((c1, "loss"), (c2, "accuracy")):
            curves = tuple(
                (
                    head,
                    tuple(rec.history.get(metric, [])),
                    tuple(rec.history.get(f"val_{metric}", [])),
                    val_loss_best_epoch(rec.history, rec.best_epoch),
                )
                for head, rec in zip(heads, records, strict=True)
            )
            col.plotly_chart(charts.overlay_figure(curves, metric), config=charts.CONFIG)


def _reveal(board: ChallengeBoard, ch: Challenge) -> None:
    c1, c2 = st.columns(2)
    scores = c1.toggle("Show the hidden test scores", value=ch.revealed, key=f"board.reveal.{ch.id}")
    names = c2.toggle("Show the students' names", value=ch.names_revealed, key=f"board.names.{ch.id}")
    if (scores, names) != (ch.revealed, ch.names_revealed):
        board.reveal(ch.id, scores=scores, names=names)
        st.rerun()


def main() -> None:
    header(
        "Challenge board",
        "Your teacher sets a challenge: a dataset, a budget, a deadline. Train on its images, enter your best "
        "runs, and the server scores them on test images nobody has seen.",
    )
    board = _board()
    teacher = identity.is_teacher()
    challenges = board.list()
    if teacher:
        with st.expander("New challenge", expanded=not challenges, icon=":material/add:"):
            _create(board)
        challenges = board.list()
    if not challenges:
        empty_state("There is no challenge yet: your teacher creates one on this page.")
        return
    ch = _pick(challenges)
    projector = st.toggle("Projector mode", key="board.projector", help="Large, with anonymous names.")
    if projector:
        # The room sees the whole screen: the sidebar (the teacher's list of students by name) folds away.
        st.html("<style>[data-testid='stSidebar'], [data-testid='stSidebarCollapsedControl'] {display: none}</style>")
        st.fragment(run_every=REFRESH_SECONDS)(_projector)(ch.id)
        return
    if ch.brief:
        st.markdown(ch.brief)
    st.caption(" ".join(budget_lines(ch)))
    if st.button("Train on this challenge's images", key="board.use", icon=":material/model_training:"):
        state.use_dataset(ch.public, label(ch))
    _settings_check(board, ch)
    if teacher:
        st.caption(
            f"The students' link to this challenge: the Train page's (or this page's) address with "
            f"`?challenge={ch.id}`."
        )
        _reveal(board, ch)
        with st.expander("Edit or delete this challenge", icon=":material/edit:"):
            _edit(board, ch)
    _entering(board, ch, teacher)
    st.fragment(run_every=REFRESH_SECONDS)(_draw_board)(ch.id, teacher)
    _differences(board, ch)


run_page(main)
