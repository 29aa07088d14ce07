"""The engine's import direction (pyproject.toml's import-linter contracts), checked on every test run."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")


def lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def lint_tool():
    if not LINT.exists():
        pytest.fail(f"import-linter is not installed next to {sys.executable}: pip install -r requirements-dev.txt")
    return LINT


def test_the_layers_contract_holds(lint_tool):
    out = lint(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "6 kept, 0 broken" in out.stdout


def _copy_tree(tmp_path: Path) -> Path:
    dst = tmp_path / "project"
    for name in ("core", "ui", "synth"):
        shutil.copytree(ROOT / name, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", dst / "pyproject.toml")
    return dst


@pytest.mark.parametrize(
    "module, line",
    [
        # a low layer reaching up, hidden inside a function (the old late-import cycle)
        ("core/base/config.py", "\n\ndef _sneaky():\n    from core.training.experiment import run_experiment\n"),
        # the engine depending on its own command line
        ("core/lab/variants.py", "\nfrom core.cli.output import run_payload\n"),
        # two packages of one layer
        ("core/data/dataset.py", "\nimport core.store.runstore\n"),
        ("core/inside/pictures.py", "\nfrom core.jobs.worker import TrainingWorker\n"),
        # the engine importing the dashboard
        ("core/store/runstore.py", "\nimport streamlit\n"),
        # the experiment reaching up into the inside-the-network package, and that package upside down
        ("core/training/experiment.py", "\nimport core.inside.network\n"),
        ("core/inside/network.py", "\nfrom core.inside.gradcam import grad_cam\n"),
        # the base package upside down
        ("core/base/errors.py", "\nfrom core.base.config import ConfigError\n"),
        # the generator reaching into the engine above its base, and the engine into the generator
        ("synth/_common.py", "\nimport core.models.layer_table\n"),
        ("core/data/loading.py", "\nimport synth\n"),
    ],
)
def test_a_violation_fails_the_contract(lint_tool, tmp_path, module, line):
    project = _copy_tree(tmp_path)
    with open(project / module, "a") as f:
        f.write(line)
    out = lint(project)
    assert out.returncode != 0, f"the contract did not catch {line.strip()!r} in {module}:\n{out.stdout}"
    assert "BROKEN" in out.stdout
