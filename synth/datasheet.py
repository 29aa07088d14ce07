"""Datasheets (README.md) for the generated datasets.

The text about each dataset's classes and cues lives next to its renderer
(the module's ``DATASHEET`` dict); this module adds the numbers of the run
(counts, size, knobs) and the exact command that regenerates the files.
"""

from __future__ import annotations

from typing import Any


def regenerate_command(info: dict[str, Any], out: str) -> str:
    """The CLI call that rewrites exactly these files (run from the repository root)."""
    return (
        f"python -m synth --dataset {info['name']} --seed {info['seed']} "
        f"--per-class {info['per_class']} --size {info['image_size']} "
        f"--noise {info['noise']:g} --overlap {info['overlap']:g} --out {out}"
    )


def readme_markdown(spec: Any, info: dict[str, Any], out: str, *, shipped: bool) -> str:
    """The dataset's README.md: what it is, how it was made, how to remake it.

    ``out`` is the ``--out`` folder to print in the command ("sample_data"
    for the shipped data, so the datasheet does not contain a local path).
    ``shipped`` says the knobs are the shipped ones, for which the measured
    difficulty (bench/bench_datasets.py) is known and printed.
    """
    sheet = spec.module.DATASHEET
    n_cls = len(info["classes"])
    mode = "RGB" if info["mode"] == "RGB" else "grayscale (L; loaders convert it to RGB)"
    counts = info["counts"]
    balanced = len(set(counts.values())) == 1
    lines = [
        f"# {info['name']}: {sheet['title']} (SYNTHETIC)",
        "",
        "> **Synthetic data.** Every image here was drawn by a NumPy program,",
        f"> `synth/{spec.module.__name__.rsplit('.', 1)[-1]}.py`; none is a photograph or a real survey.",
        "> The cues follow how geoscientists describe the real thing, but a model trained",
        "> here has learned the generator, not the Earth. Use it to learn how CNNs behave.",
        "",
        sheet["summary"],
        "",
        "## At a glance",
        "",
        "| | |",
        "|---|---|",
        f"| images | {info['images']} ({n_cls} classes x {info['per_class']}"
        + (", balanced)" if balanced else ")")
        + " |",
        f"| image size | {info['image_size']} x {info['image_size']} px, {mode} PNG |",
        "| layout | `<class>/<class>_<index>.png`, index from 0000 |",
        "| label order | `classes.txt`, one class per line (line 1 = label 0) |",
        f"| generator settings | seed {info['seed']}, noise {info['noise']:g}, overlap {info['overlap']:g} |",
        "",
        "## Classes",
        "",
        "| label | class | images | what distinguishes it |",
        "|---|---|---|---|",
    ]
    for i, name in enumerate(info["classes"]):
        lines.append(f"| {i} | {name} | {counts[name]} | {sheet['classes'][name]} |")
    lines += ["", "## What does not tell the classes apart", "", sheet["nuisance"], ""]
    if sheet.get("choice"):
        lines += ["## Why these classes", "", sheet["choice"], ""]
    lines += ["## How it was generated", "", sheet["generation"], ""]
    lines += ["## How hard it is", ""]
    if shipped:
        lines += [sheet["difficulty"], ""]
    else:
        lines += [
            "Not measured for this variant. Run",
            f"`python bench/bench_datasets.py --dataset {info['name']} --data-dir {out}`.",
            "",
        ]
    lines += [
        "## Limitations",
        "",
        sheet["limitations"],
        "",
        "## Regenerate",
        "",
        "From the repository root:",
        "",
        "```",
        regenerate_command(info, out),
        "```",
        "",
        "Each image depends only on (dataset, seed, class, index) and the knobs, so this",
        "rewrites these files byte for byte, and `--per-class` larger than shown keeps the",
        "existing images and adds new ones. `--size`, `--noise` and `--overlap` make",
        "larger, noisier or harder variants; `python -m synth --help` lists the options.",
        "",
    ]
    return "\n".join(lines)


def index_markdown(infos: list[dict[str, Any]]) -> str:
    """sample_data/README.md: one line per dataset."""
    lines = [
        "# Sample data (SYNTHETIC)",
        "",
        "The three datasets bundled with CNN Lab. All of them are **synthetic**: drawn by the",
        "deterministic generator in `synth/` from documented geological cues, because no",
        "real dataset can be downloaded with the app. Each folder has a datasheet (`README.md`)",
        "and `classes.txt` (label order).",
        "",
        "| dataset | classes | images | size |",
        "|---|---|---|---|",
    ]
    for info in infos:
        lines.append(
            f"| [{info['name']}]({info['name']}/README.md) | {', '.join(info['classes'])} "
            f"| {info['images']} | {info['image_size']} x {info['image_size']} {info['mode']} |"
        )
    lines += ["", "Regenerate all of them exactly: `python -m synth` (from the repository root).", ""]
    return "\n".join(lines)
