"""Helpers shared by the dashboard tests (a module, not conftest.py, so tests can import it)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from core.base.config import ModelConfig, TrainConfig

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
TIMEOUT = 120  # seconds per script run: a shared 2-core machine can be slow
TINY = ModelConfig(input_size=16, blocks=1, filters=4, dense_units=8, dropout=0.0)
FAST = TrainConfig(epochs=3, batch_size=8)
LONG = FAST.replace(epochs=300, batch_size=4)  # a training that goes on until it is stopped


def wait_for(predicate, timeout: float = 120.0, every: float = 0.05):
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(every)


def texts(at) -> str:
    """Everything a student can read on the page, as one string (for `in` checks)."""
    parts = []
    for kind in (
        "title",
        "header",
        "subheader",
        "markdown",
        "caption",
        "info",
        "success",
        "warning",
        "error",
        "metric",
    ):
        for el in getattr(at, kind):
            parts.append(str(el.value))
            if kind == "metric":
                parts.append(str(el.label))
    return "\n".join(parts)


def chart_specs(at) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def zip_of(folder) -> bytes:
    """A folder as the bytes of a .zip (what a student uploads)."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return buf.getvalue()


def started(at, page: str):
    """The jobs a page of this session started last (ui.jobs.following): a Started, or None."""
    return (at.session_state["jobs.started"] if "jobs.started" in at.session_state else {}).get(page)


def started_ids(at, page: str) -> list[str]:
    """The ids of the jobs a page of this session started last (ui.jobs.start / start_many)."""
    return list(started(at, page).ids)
