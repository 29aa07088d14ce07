"""Sweep: one or two settings over a few values each, trained in the background, read as a heatmap of
best-epoch validation accuracy; open any cell's run."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import streamlit as st

from core.base import plural, stored_line
from core.results import MAX_POINTS, SWEEPABLE, sweep_grid
from ui import charts, jobs, state, study
from ui.feedback import header, no_dataset
from ui.frame import run_page
from ui.job_panel import ended_text, job_panel
from ui.sidebar import dataset_label

K = "sweep."
DEFAULTS = {
    K + "first": "dropout",
    K + "first_values": "0, 0.25, 0.5",
    K + "second": "(none)",
    K + "second_values": "16, 32",
}


def main() -> None:
    if st.session_state.pop(K + "go", False):
        st.switch_page(state.PAGES["diagnostics"])
    header(
        "Sweep",
        "Train the network from the Architecture and Train pages over a few values of one or two "
        f"settings (at most {MAX_POINTS} runs) and see which values score best on the validation images. "
        "Runs already stored come back at once.",
    )
    source = state.dataset()
    if not source:
        no_dataset()
        return
    st.caption(f"Data: **{dataset_label(source)}**; every other setting as on the Architecture and Train pages.")
    state.start_widgets(DEFAULTS)
    c1, c2 = st.columns(2)
    c1.selectbox("First setting", SWEEPABLE, key=K + "first", persist_state="session")
    c1.text_input("Its values (comma-separated)", key=K + "first_values", persist_state="session")
    c2.selectbox("Second setting (optional)", ("(none)", *SWEEPABLE), key=K + "second", persist_state="session")
    if st.session_state[K + "second"] != "(none)":
        c2.text_input("Its values (comma-separated)", key=K + "second_values", persist_state="session")
    if st.button("Run the sweep", type="primary", key=K + "start", icon=":material/grid_on:"):
        _start(source)
    run = jobs.following(jobs.SWEEP)  # the sweep this session started last: its jobs, names, values, source
    if run is None:
        st.info("No sweep yet: choose the settings and press **Run the sweep**.", icon=":material/grid_on:")
        return
    jobs.follow(jobs.SWEEP, partial(_results, run.about))


def _grid() -> dict[str, list[str]]:
    ss = st.session_state
    grid = {ss[K + "first"]: ss[K + "first_values"].split(",")}
    if ss[K + "second"] != "(none)":
        grid[ss[K + "second"]] = ss[K + "second_values"].split(",")
    return {k: [v for v in vals if v.strip()] for k, vals in grid.items()}


def _start(source: str) -> None:
    grid = _grid()
    if len(grid) == 1 and st.session_state[K + "second"] != "(none)":
        st.error("Choose two different settings, or no second one.", icon=":material/error:")
        return
    try:
        study.submit_sweep(source, grid, state.model_cfg(), state.train_cfg())
    except ValueError as exc:  # ConfigError, DataError, ArchitectureError: nothing was queued
        st.error(str(exc), icon=":material/error:")


def _results(run: Mapping, snaps: list) -> None:
    n = len(snaps)
    if any(jobs.is_active(s) for s in snaps):
        job_panel(
            snaps, key=K, summary=lambda done, n: f"{done} of {plural(n, 'point')} done", stop_label="Stop the sweep"
        )
        return
    recs = jobs.results(snaps)
    if any(r is None for r in recs):
        failed = next((s for s, r in zip(snaps, recs, strict=True) if r is None), None)
        why = ended_text(failed) if failed is not None else None
        st.error(f"Not every point finished{': ' + why if why else ''}.", icon=":material/error:")
        return
    result = sweep_grid(run["names"], run["values"], recs)
    stored = sum(1 for r in recs if r.cached)
    st.caption(stored_line(n, stored, "point"))
    z = tuple(tuple(row) for row in result["z"])
    st.plotly_chart(
        charts.sweep_figure(tuple(run["names"]), tuple(tuple(v) for v in run["values"]), z), config=charts.CONFIG
    )
    cells = {}
    by_id = {r.run_id: r for r in recs}
    for i, row in enumerate(result["run_ids"]):
        for j, run_id in enumerate(row):
            where = [run["values"][0][i], run["values"][1][j]] if len(run["names"]) > 1 else [run["values"][0][j]]
            cells[run_id] = ", ".join(f"{k} {v}" for k, v in zip(run["names"], where, strict=True))
    st.markdown("**The curves of every point** (loss; the green dot is the best epoch):")
    panels = tuple(
        (cells[i], tuple(by_id[i].history.get("loss", ())), tuple(by_id[i].history.get("val_loss", ()))) for i in cells
    )
    st.plotly_chart(charts.small_multiples_figure(panels), config=charts.CONFIG)
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    pick = c1.selectbox("Open a cell's run", list(cells), format_func=cells.get, key=K + "cell")
    c2.button("Open in Diagnostics", key=K + "open", on_click=_open, args=(pick,), icon=":material/monitoring:")


def _open(run_id: str) -> None:
    st.session_state[state.RUN_ID] = run_id  # a callback: before the sidebar's run select is drawn
    st.session_state[K + "go"] = True  # main() switches page (st.switch_page is not for callbacks)


run_page(main)
