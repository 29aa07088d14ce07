"""`pip install -e .` gives a `cnnlab` command equal to `python -m core`, working from any folder, with the
bundled sample data found by name. Installed for real into a throwaway virtualenv (never the one running)."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A new virtualenv that sees this environment's packages (a .pth file) and has CNN Lab installed editable."""
    pytest.importorskip("setuptools", minversion="64")  # PEP 660 editable installs
    pytest.importorskip("pip")
    home = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home)], check=True, timeout=120)
    site = Path(
        subprocess.run(
            [str(home / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site / "shared.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    p = subprocess.run(
        [
            str(home / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-e",
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr
    return home


def test_the_cnnlab_command_works_from_any_folder(venv, tmp_path):
    cnnlab = venv / "bin" / "cnnlab"
    summary = subprocess.run(
        [str(cnnlab), "summary", "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert summary.returncode == 0, summary.stderr
    assert json.loads(summary.stdout)["total_params"] == 683_845
    datasets = subprocess.run(
        [str(cnnlab), "datasets", "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert {d["name"] for d in json.loads(datasets.stdout)} >= {"thin_sections", "seismic_facies", "drill_core"}
    # python -m core in that environment, from another folder, is the same program
    same = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "core", "summary", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert same.stdout == summary.stdout
    bad = subprocess.run(
        [str(cnnlab), "train", "--data", "no_such_dataset"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"CNNLAB_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
    )
    assert bad.returncode == 2 and bad.stderr.startswith("cnnlab train: No dataset at 'no_such_dataset'")
    assert all(name in bad.stderr for name in ("thin_sections", "seismic_facies", "drill_core"))
