"""Every example of the README's "The command line" block runs, as written, on tiny settings.

Each line is run in a subprocess, in README order, with only the sizes made tiny: a tiny dataset for
`thin_sections`/`my_images.zip`, 1 epoch, 2 seeds, the first two values of each grid, a tiny network for the
commands that take model flags, a stored run for RUN_ID. A flag renamed or removed in the program, or an
example that stops working, fails here, so the README cannot drift from the program.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from calibrations import store_calibration

ROOT = Path(__file__).resolve().parents[1]
TINY_NET = ["--input-size", "16", "--blocks", "2", "--filters", "4", "--dense", "8", "--batch-size", "8"]
MODEL_FLAG_COMMANDS = {"train", "estimate", "repeat", "sweep"}


def readme_examples() -> list[tuple[str, str]]:
    """``(command, comment)`` for each example of the README's "The command line" section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## The command line", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    lines = [
        ln for block in blocks for ln in block.splitlines() if ln.startswith(("python -m core", "python -m synth"))
    ]
    return [(*(re.split(r"\s+#\s", ln, maxsplit=1) + [""])[:2],) for ln in lines]  # type: ignore[return-value]


def tiny(line: str, data: Path, zipped: Path, run_id: str, work: Path, challenge_id: str = "") -> list[str]:
    """The example's words with the sizes made tiny (nothing else is changed)."""
    line = re.sub(r"\s*\[[^\]]*\]", "", line)  # optional parts: [RUN_ID...] [--all-keys] [--json]
    words = shlex.split(line)[2:]  # after "python -m"
    out: list[str] = []
    it = iter(words)
    for w in it:
        if w in ("--epochs", "--seeds"):
            out += [w, "1" if w == "--epochs" else "2"]
            next(it)
        elif w == "--data":
            source = next(it)
            out += [w, str(zipped if source.endswith(".zip") else data)]
        elif w == "--grid":
            name, _, values = next(it).partition("=")
            out += [w, f"{name}={','.join(values.split(',')[:2])}"]
        elif w == "RUN_ID":
            out.append(run_id)
        elif w == "CHALLENGE_ID":
            out.append(challenge_id)
        elif w == "basalt":
            out.append("dark")  # a class of the tiny dataset
        else:
            out.append(w)
    if out[0] == "core" and out[1] in MODEL_FLAG_COMMANDS:
        out += TINY_NET
    if out[0] == "core" and (out[1] == "lab" or "--transfer" in out) and "--epochs" not in out:
        out += ["--epochs", "1"]
    if out[0] == "synth":
        out += ["--out", str(work / "synth"), "--per-class", "2", "--size", "16"]
    return [sys.executable, "-m", *out]


def _calibrate(home: Path) -> None:
    """A stored calibration (from a fake machine speed), so `estimate` does not spend 30 s measuring this one."""
    store_calibration(home)


def test_the_readme_has_the_examples_this_test_reads():
    examples = [line for line, _ in readme_examples()]
    assert len(examples) >= 15 and examples[0].startswith("python -m core summary")
    assert {shlex.split(e)[3] for e in examples if e.startswith("python -m core ")} >= {
        "summary",
        "train",
        "estimate",
        "runs",
        "lab",
        "compare",
        "repeat",
        "sweep",
        "export",
        "jobs",
        "explain",
    }


def test_every_command_line_example_in_the_readme_runs(tmp_path):
    from PIL import Image
    from tinydata import write_tiny_dataset

    work = tmp_path / "work"
    work.mkdir()
    data = write_tiny_dataset(tmp_path / "tiny", per_class=8, size=16)
    zipped = tmp_path / "my_images.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        for p in sorted(data.rglob("*.png")):
            zf.write(p, p.relative_to(data.parent))
    Image.open(next(data.rglob("*.png"))).save(work / "rock.png")
    home = tmp_path / "home"
    _calibrate(home)
    from core.lab import ChallengeBoard
    from core.store.runstore import RunStore

    challenge_id = ChallengeBoard(RunStore(home)).create("Stripes", str(data)).id  # what CHALLENGE_ID names
    env = {**os.environ, "CNNLAB_HOME": str(home), "PYTHONPATH": str(ROOT)}
    env.pop("CNNLAB_SERVING", None)
    run_id = "RUN_ID"
    for line, comment in readme_examples():
        argv = tiny(line.strip(), data, zipped, run_id, work, challenge_id)
        p = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=900)
        assert p.returncode == 0, f"{line}\n{shlex.join(argv[1:])}\n{p.stderr[-2000:]}"
        if run_id == "RUN_ID" and argv[3] == "train" and "--json" in argv:
            run_id = json.loads(p.stdout)["run_id"]  # the examples below name it as RUN_ID
        if argv[3] == "summary":  # the numbers the README quotes for the network are the program's
            quoted = re.findall(r"\d{1,3}(?:,\d{3})+", comment)
            assert quoted and all(n.replace(",", "") in p.stdout for n in quoted), (line, comment)
    assert (work / "run.py").is_file() and (work / "best.keras").is_file() and (work / "run.html").is_file()
    assert sorted(p.name for p in (work / "explained").iterdir())
    synth = tmp_path / "work" / "synth"
    assert {p.name for p in synth.iterdir() if p.is_dir()} == {"drill_core", "seismic_facies", "thin_sections"}


@pytest.mark.parametrize("line", ["python -m core compare RUN_ID RUN_ID [RUN_ID...] [--all-keys] [--json]"])
def test_optional_parts_and_placeholders_are_substituted(line, tmp_path):
    argv = tiny(line, tmp_path, tmp_path / "z.zip", "abc123", tmp_path)
    assert argv[1:] == ["-m", "core", "compare", "abc123", "abc123"]
