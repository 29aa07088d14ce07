"""Compare: any stored runs side by side (the settings that differ, the numbers at each best epoch, the
curves overlaid, how honest their confidence is), repeats over seeds, and a run's files to take away."""

from __future__ import annotations

from functools import partial

import streamlit as st

from core.results import MAX_SEEDS, MIN_SEEDS, compare_runs, confidence_sentence, difference_sentence, repeat_summary
from core.training import HeldOutUnavailable
from ui import charts, jobs, resources, state, study
from ui.feedback import empty_state, header
from ui.frame import run_page
from ui.job_panel import job_panel
from ui.sidebar import source_name

K = "compare."
DEFAULTS = {K + "sources": [], K + "kinds": [], K + "diff": True, K + "seeds": 3}
PCT = st.column_config.NumberColumn(format="%.3f")
TIMES = {  # each time named for what it measures (core.results.compare.run_times)
    "s / epoch": st.column_config.NumberColumn(
        format="%.2f", help="Seconds one epoch took, on average over the run's epochs (each epoch's own time)."
    ),
    "Set-up (s)": st.column_config.NumberColumn(
        format="%.1f", help="Seconds outside the epochs: building the network (for VGG16 also its base features)."
    ),
    "Total (s)": st.column_config.NumberColumn(format="%.1f", help="Seconds the whole training took."),
}


def main() -> None:
    header(
        "Compare runs",
        "Pick any stored runs. The numbers are read at each run's **best epoch** (lowest "
        "validation loss), not the last one; the table shows only the settings that differ.",
    )
    runs = resources.list_runs()
    if not runs:
        empty_state(
            "No stored runs yet: train one on the Train page, then compare it here.",
            state.PAGES["train"],
            "Go to the Train page",
            ":material/model_training:",
        )
        return
    state.start_widgets(DEFAULTS)
    c1, c2, c3 = st.columns(3)
    c1.multiselect(
        "Datasets",
        sorted({r["source"] for r in runs}),
        key=K + "sources",
        format_func=source_name,
        persist_state="session",
        placeholder="all datasets",
    )
    c2.multiselect(
        "Model kinds",
        sorted({r["model"] for r in runs}),
        key=K + "kinds",
        persist_state="session",
        placeholder="all kinds",
    )
    since = c3.date_input("Trained since", value=None, key=K + "since", format="YYYY-MM-DD")
    shown = study.filter_runs(runs, st.session_state[K + "sources"], st.session_state[K + "kinds"], since)
    labels = {r["run_id"]: f"{r['label']} · {source_name(r['source'])} · {r['run_id']}" for r in shown}
    if K + "runs" not in st.session_state:
        st.session_state[K + "runs"] = [r["run_id"] for r in shown[:2]]
    st.session_state[K + "runs"] = [r for r in st.session_state[K + "runs"] if r in labels]
    picked = st.multiselect(
        "Runs", list(labels), key=K + "runs", format_func=labels.get, placeholder="pick two or more runs"
    )
    records = study.records(picked)
    if not records:
        st.info("Pick runs above to compare them.", icon=":material/compare_arrows:")
        return
    _comparison(records)
    _calibration(records)
    _repeats(records)


def _comparison(records: list) -> None:
    only = st.toggle(
        "Differences only", key=K + "diff", persist_state="session", help="Off: every setting of every run."
    )
    result = compare_runs(records, all_keys=not only)
    for note in result["notes"]:
        st.warning(note, icon=":material/warning:")
    names = [f"{i + 1}. {r['run_id']}" for i, r in enumerate(result["runs"])]
    if result["settings"]:
        st.dataframe(
            [
                {"Setting": s["key"], **{n: str(v) for n, v in zip(names, s["values"], strict=True)}}
                for s in result["settings"]
            ],
            hide_index=True,
        )
    elif len(records) > 1:
        st.caption("These runs have the same settings.")
    rows = [
        {
            "Run": n,
            "Model": r["label"],
            "Best epoch": f"{r['best_epoch']} of {r['epochs_run']}",
            "Verdict": r["verdict_title"],
            "Val loss (best)": r["best_val_loss"],
            "Val acc (best)": r["best_val_accuracy"],
            "Test acc": r["test_accuracy"],
            "Macro F1": r["macro_f1"],
            "Trainable": r["trainable_params"],
            "Frozen": r["frozen_params"],
            "s / epoch": r["seconds_per_epoch"],
            "Set-up (s)": r["setup_seconds"],
            "Total (s)": r["seconds"],
            **{f"F1 {c}": v for c, v in r["f1"].items()},
        }
        for n, r in zip(names, result["runs"], strict=True)
    ]
    scores = {k: PCT for k in ("Val loss (best)", "Val acc (best)", "Test acc", "Macro F1")}
    st.dataframe(rows, hide_index=True, column_config={**scores, **TIMES})
    c1, c2 = st.columns(2)
    for col, metric in ((c1, "loss"), (c2, "accuracy")):
        curves = tuple(
            (n, tuple(rec.history.get(metric, [])), tuple(rec.history.get(f"val_{metric}", [])), row["best_epoch"])
            for n, rec, row in zip(names, records, result["runs"], strict=True)
        )
        col.plotly_chart(charts.overlay_figure(curves, metric), config=charts.CONFIG)


def _calibration(records: list) -> None:
    st.subheader("How honest is their confidence?")
    st.caption(
        "**Calibration error**: the gap between how sure a run says it is and how often it is right on the test "
        "images, over 10 confidence bins (0 is honest). **T**: the temperature fitted on the validation images "
        "(above 1: over-confident); dividing by it changes the confidence, never the test accuracy. The "
        "Predictions page draws one run's bins."
    )
    rows, lines = [], []
    with st.spinner("Measuring each run's calibration…"):
        for i, rec in enumerate(records):
            name = f"{i + 1}. {rec.run_id}"
            try:
                cal = resources.calibration(rec)
            except HeldOutUnavailable as exc:
                lines.append(f"{name}: {exc}")
                continue
            rows.append(
                {
                    "Run": name,
                    "Says on average": cal.before.mean_confidence,
                    "Test acc": cal.test_accuracy_before,
                    "Calibration error": cal.before.ece,
                    "T": cal.temperature,
                    "Error after T": cal.after.ece if cal.after else None,
                }
            )
            lines.append(f"{name}: {confidence_sentence(cal.before)} {cal.note}".strip())
    if rows:
        st.dataframe(rows, hide_index=True, column_config={k: PCT for k in rows[0] if k != "Run"})
    st.caption("  \n".join(lines))


def _repeats(records: list) -> None:
    st.subheader("Repeat over seeds")
    st.markdown(
        "Is a difference real, or luck of the draw? Train the same configuration again with other seeds "
        "(the split, the first weights and the shuffling change; nothing else does)."
    )
    c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
    target = c1.selectbox(
        "Run to repeat",
        [r.run_id for r in records],
        key=K + "target",
        format_func=lambda i: next(r.label for r in records if r.run_id == i),
    )
    c2.number_input("Seeds", MIN_SEEDS, MAX_SEEDS, key=K + "seeds", persist_state="session")
    if c3.button("Repeat over seeds", key=K + "repeat", icon=":material/replay:"):
        rec = next(r for r in records if r.run_id == target)
        try:
            study.submit_repeats(rec, int(st.session_state[K + "seeds"]))
        except ValueError as exc:
            st.error(str(exc), icon=":material/error:")
    repeated = {r.run_id: jobs.following(jobs.repeats_key(r.run_id)) for r in records}
    repeated = {run_id: started for run_id, started in repeated.items() if started is not None}
    if not repeated:
        st.caption("No repeats yet for these runs.")
        return
    order = list(repeated)
    sizes = [len(repeated[k].ids) for k in order]
    jobs.follow([jobs.repeats_key(k) for k in order], partial(_repeat_results, order, sizes))


def _repeat_results(order: list[str], sizes: list[int], snaps: list) -> None:
    summaries, at = {}, 0
    for run_id, n in zip(order, sizes, strict=True):
        part = snaps[at : at + n]
        at += n
        if any(jobs.is_active(s) for s in part):
            job_panel(
                part,
                key=f"{K}repeats.{run_id}.",
                summary=lambda done, n, run_id=run_id: f"Repeats of {run_id}: {done} of {n} done",
                stop_label="Stop these repeats",
            )
            continue
        recs = [r for r in jobs.results(part) if r is not None]
        if len(recs) >= 2:
            summaries[run_id] = repeat_summary(recs)
    if not summaries:
        return
    rows = []
    for run_id, s in summaries.items():
        for key, title in (("best_val_accuracy", "best-epoch val acc"), ("test_accuracy", "test acc")):
            sp = s[key]
            rows.append(
                {
                    "Run": run_id,
                    "Score": title,
                    "Seeds": sp["n"],
                    "Mean": sp["mean"],
                    "Std": sp["std"],
                    "Min": sp["min"],
                    "Max": sp["max"],
                }
            )
    st.dataframe(rows, hide_index=True, column_config={k: PCT for k in ("Mean", "Std", "Min", "Max")})
    curves = tuple(
        (
            run_id,
            tuple(s["curves"]["val_accuracy"]["mean"]),
            tuple(s["curves"]["val_accuracy"]["min"]),
            tuple(s["curves"]["val_accuracy"]["max"]),
        )
        for run_id, s in summaries.items()
        if "val_accuracy" in s["curves"]
    )
    st.plotly_chart(charts.band_figure(curves), config=charts.CONFIG)
    ids = list(summaries)
    if len(ids) >= 2:
        sentence = difference_sentence(summaries[ids[0]], summaries[ids[1]], f"run {ids[0]}", f"run {ids[1]}")
        st.info(sentence, icon=":material/casino:")
    else:
        st.caption("Repeat a second run too: the page then says whether their difference is larger than the seeds'.")


run_page(main)
