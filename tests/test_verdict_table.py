"""The truth table of curve shapes (docs/VERDICT.md): one case per row, and properties over hundreds of curves.

The properties are what a student checks by holding the sentence next to the curve: no sentence states a
trend the numbers contradict. Hypothesis generates the curves (derandomized: the same curves on every run).
"""

import math
import re
from pathlib import Path

import numpy as np
from histories import (
    course_printout,
    good_fit_history,
    hist,
    overfitting_history,
    still_improving_history,
    underfitting_history,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.results import verdict
from core.results.diagnosis import diagnose

ROOT = Path(__file__).resolve().parents[1]
PROPERTY = settings(
    max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)

# Sentences that say validation loss stopped falling, levelled off or rose.
STOPPED = re.compile(r"stopped falling|plateau|levell?ed off|\bflat\b|barely moved|no lower|got worse|bottomed out")
ROSE = re.compile(r"\b(rose|rises|rising|risen|climb\w*|went up|turned up)\b")


def texts(d) -> list[str]:
    """Every sentence the verdict shows: title, headline, evidence, remedies."""
    return [d.title, d.headline, *d.evidence, *(r.label for r in d.remedies), *(r.why for r in d.remedies)]


SUBJECT = re.compile(r"validation loss|training loss|both losses|the losses")


def says_not_falling(d) -> list[str]:
    """The clauses of a verdict that say validation loss stopped falling, levelled off or rose.

    A rise verb belongs to the nearest loss named before it: "validation loss fell ... and training loss rose"
    is about training loss; "validation loss was lowest at epoch 7 and rose" is about validation loss.
    """
    bad = []
    for text in texts(d):
        for clause in re.split(r"(?<=[.:;])\s+", text):
            low = clause.lower()
            if STOPPED.search(low):
                bad.append(clause)
            for verb in ROSE.finditer(low):
                subjects = SUBJECT.findall(low[: verb.start()])
                if subjects and subjects[-1] != "training loss":
                    bad.append(clause)
    return bad


# --- one case per row of the table --------------------------------------------------------------------


def test_row_diverged_nan():
    d = diagnose(
        hist(
            [1.6, 1.2, float("nan"), float("nan")],
            [0.2, 0.4, 0.2, 0.2],
            [1.5, 1.3, 2.0, float("nan")],
            [0.3, 0.4, 0.2, 0.2],
        ),
        num_classes=5,
    )
    assert (d.verdict, d.title, d.numbers["diverged_epoch"]) == ("diverged", "Diverged", 3)
    assert d.headline.startswith("Training broke down at epoch 3") and d.headline.endswith("Lower the learning rate.")
    assert d.remedies[0].label == "Lower the learning rate to 0.0001"


def test_row_unstable_rising():
    d = diagnose(hist([1.0, 1.1, 1.2, 1.3, 1.4], [0.5] * 5, [1.0, 1.05, 1.1, 1.2, 1.3], [0.5] * 5))
    assert (d.verdict, d.title) == ("diverged", "Unstable")
    assert "training loss ended higher than it started (1.000 at epoch 1, 1.400 at epoch 5)" in d.headline
    assert [r.key for r in d.remedies] == ["learning_rate"] and "Lower the learning rate" in d.headline


def test_row_unstable_jumps():
    loss = [1.6, 1.0, 1.5, 0.8, 1.4, 0.7, 0.6]
    d = diagnose(hist(loss, [0.8] * 7, [1.5, 1.1, 1.4, 0.9, 1.3, 0.8, 0.7], [0.7] * 7))
    assert (d.verdict, d.title) == ("diverged", "Unstable")
    assert "training loss jumped up at epochs 3, 5" in d.headline
    assert "1.000 -> 1.500; 0.800 -> 1.400" in d.evidence[0]


def test_row_too_few_epochs():
    d = diagnose(hist([1.2, 0.9], [0.6, 0.7], [1.1, 1.0], [0.6, 0.65]), num_classes=5)
    assert (d.verdict, d.title) == ("too_few_epochs", "Too few epochs to judge")
    assert "at least 3 are needed" in d.headline and "Good fit" not in " ".join(texts(d))
    assert d.remedies[0].key == "more_epochs" and "at least 3 are needed" in d.remedies[0].why


def test_row_overfitting_by_the_turn_names_the_epoch():
    d = diagnose(overfitting_history(), num_classes=5)
    assert (d.verdict, d.numbers["overfit_start_epoch"]) == ("overfitting", 7)
    assert "after epoch 7" in d.headline


def test_row_still_improving():
    d = diagnose(still_improving_history(), num_classes=5)
    assert (d.verdict, d.title) == ("still_improving", "Still improving")
    assert d.remedies[0].key == "more_epochs" and d.remedies[0].changes["train.epochs"] == 40


def test_row_still_improving_and_underfitting_the_issues_three_epochs():
    # `train --data thin_sections --epochs 3` from the issue: validation loss 1.532, 1.572, 1.312, lowest at
    # the last epoch, accuracies near guessing. It was "Underfitting ... validation loss has stopped falling".
    d = diagnose(hist([1.61, 1.58, 1.50], [0.22, 0.27, 0.33], [1.532, 1.572, 1.312], [0.25, 0.24, 0.41]), num_classes=5)
    assert (d.verdict, d.title) == ("still_improving", "Still improving (underfitting so far)")
    assert d.headline.startswith("The network is underfitting so far: accuracy is still low")
    assert "but validation loss was still falling at the last epoch (its lowest, 1.312, came at epoch 3 of 3)" in (
        d.headline
    )
    assert d.evidence[0].startswith("Over epochs 1-3 validation loss fell from 1.532 (epoch 1) to 1.312 (epoch 3)")
    assert "last third" not in " ".join(texts(d)) and not says_not_falling(d)


def test_row_underfitting():
    d = diagnose(underfitting_history(), num_classes=5)
    assert (d.verdict, d.title) == ("underfitting", "Underfitting")
    assert d.remedies[0].key == "bigger_model"


def test_row_overfitting_by_the_gap():
    d = diagnose(course_printout(), num_classes=5)
    assert d.verdict == "overfitting" and d.numbers["overfit_start_epoch"] is None
    assert "even though validation loss was still at its lowest at the last epoch" in d.headline


def test_row_good_fit():
    d = diagnose(good_fit_history(), num_classes=5)
    assert (d.verdict, d.title, d.remedies) == ("good_fit", "Good fit", [])


def test_every_row_is_in_the_doc_and_the_doc_quotes_the_codes_thresholds():
    doc = (ROOT / "docs" / "VERDICT.md").read_text(encoding="utf-8")
    assert verdict.thresholds_markdown() in doc, (
        "docs/VERDICT.md's threshold table differs from core/results/verdict.py: "
        "paste core.results.verdict.thresholds_markdown()"
    )
    for title in verdict.TITLES.values():
        assert f"**{title}**" in doc
    named = set(re.findall(r"`([A-Z_]{4,})`", doc))
    assert named == set(verdict.THRESHOLDS)  # every rule's number is a named threshold, and each is used
    assert verdict.truth_table_text() == doc


# --- generated curves ---------------------------------------------------------------------------------


@st.composite
def shaped(draw, min_n=1, max_n=30, floor=0.02):
    """A history of a plausible shape: decaying losses with a random turn, noise and accuracies."""
    n = draw(st.integers(min_n, max_n))
    t = np.arange(1, n + 1, dtype=float)
    start = draw(st.floats(0.5, 3.0))
    tau = draw(st.floats(1.0, 30.0))
    end = draw(st.floats(floor, 0.9)) * start
    loss = end + (start - end) * np.exp(-t / tau)
    turn = draw(st.integers(1, n))
    up = draw(st.floats(0.0, 0.08))
    vloss = (end * draw(st.floats(1.0, 2.0))) + (start - end) * np.exp(-t / tau) + up * start * np.maximum(t - turn, 0)
    noise = draw(st.floats(0.0, 0.06))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    loss = loss * (1 + rng.normal(0, noise / 3, n))
    vloss = vloss * (1 + rng.normal(0, noise, n))
    acc_end = draw(st.floats(0.2, 1.0))
    acc = np.clip(acc_end - (acc_end - 0.2) * np.exp(-t / tau) + rng.normal(0, noise / 3, n), 0, 1)
    vacc = np.clip(acc - draw(st.floats(-0.05, 0.3)) * (1 - np.exp(-t / tau)), 0, 1)
    return hist(np.abs(loss), acc, np.abs(vloss), vacc)


@st.composite
def wild(draw, min_n=1, max_n=25):
    """Any positive numbers: shapes no training makes, to test the sentences, not the shapes."""
    n = draw(st.integers(min_n, max_n))
    pos = st.floats(0.001, 5.0)
    unit = st.floats(0.0, 1.0)
    return hist(*(draw(st.lists(s, min_size=n, max_size=n)) for s in (pos, unit, pos, unit)))


CLASSES = st.sampled_from([None, 2, 5, 10])


def lowest_at_the_end(h):
    v = list(h["val_loss"])
    v[-1] = min(v) * 0.97
    return {**h, "val_loss": v}


@PROPERTY
@given(h=st.one_of(shaped(), wild()), classes=CLASSES)
def test_lowest_validation_loss_at_the_last_epoch_never_reads_as_stopped_or_rising(h, classes):
    h = lowest_at_the_end(h)
    d = diagnose(h, num_classes=classes)
    assert d.numbers["best_epoch"] == len(h["loss"])
    assert not says_not_falling(d), (d.verdict, says_not_falling(d))
    assert d.verdict in ("diverged", "too_few_epochs", "still_improving", "overfitting")
    if d.verdict == "overfitting":
        assert d.numbers["overfit_start_epoch"] is None  # the gap, never a turn of the curve


@st.composite
def turned(draw):
    """Validation loss falls to a minimum at epoch b, then rises for k >= 4 epochs by well over the margin,
    while training loss keeps falling."""
    b = draw(st.integers(1, 20))
    k = draw(st.integers(4, 15))
    n = b + k
    t = np.arange(1, n + 1, dtype=float)
    low = draw(st.floats(0.3, 1.2))
    top = low * draw(st.floats(1.2, 3.0))
    vloss = np.where(t <= b, top - (top - low) * (t - 1) / max(b - 1, 1), 0)
    rise = draw(st.floats(2.5, 10.0)) * verdict.RISE_FRACTION  # at epoch n - 1 still > 1.5 x the margin
    vloss = np.where(t > b, low * (1 + rise * (t - b) / k), vloss)
    vloss[0] = top if b > 1 else low
    loss = draw(st.floats(0.8, 2.0)) * np.exp(-t / draw(st.floats(3.0, 15.0)))
    acc = np.clip(1 - loss / 2, 0, 1)
    return b, hist(loss, acc, vloss, np.clip(acc - 0.1, 0, 1))


@PROPERTY
@given(case=turned(), classes=CLASSES)
def test_a_rise_after_the_minimum_while_training_falls_is_overfitting_from_that_epoch(case, classes):
    b, h = case
    d = diagnose(h, num_classes=classes)
    assert d.verdict == "overfitting" and d.numbers["overfit_start_epoch"] == b
    assert f"after epoch {b}:" in d.headline


@PROPERTY
@given(h=shaped(min_n=3, floor=0.5), scale=st.sampled_from([0.5, 2.0, 4.0, 8.0]))
def test_rescaling_every_loss_keeps_the_verdict(h, scale):
    # Unknown K, so the absolute chance rule is out; losses >= 0.25 after scaling, so a rise past RISE_FRACTION
    # is also past RISE_ABSOLUTE. Powers of two scale floats exactly.
    scaled = {**h, "loss": [x * scale for x in h["loss"]], "val_loss": [x * scale for x in h["val_loss"]]}
    a, b = diagnose(h), diagnose(scaled)
    assert (a.verdict, a.title, a.numbers["best_epoch"], a.numbers["overfit_start_epoch"]) == (
        b.verdict,
        b.title,
        b.numbers["best_epoch"],
        b.numbers["overfit_start_epoch"],
    )


@PROPERTY
@given(h=st.one_of(shaped(), wild()), classes=CLASSES, data=st.data())
def test_nan_anywhere_is_diverged_at_its_epoch(h, classes, data):
    n = len(h["loss"])
    at = data.draw(st.integers(1, n))
    key = data.draw(st.sampled_from(["loss", "val_loss"]))
    value = data.draw(st.sampled_from([math.nan, math.inf]))
    h = {**h, key: [value if i == at - 1 else x for i, x in enumerate(h[key])]}
    d = diagnose(h, num_classes=classes)
    first = min(i + 1 for i in range(n) if not (math.isfinite(h["loss"][i]) and math.isfinite(h["val_loss"][i])))
    assert (d.verdict, d.title, d.numbers["diverged_epoch"]) == ("diverged", "Diverged", first)
    assert [r.key for r in d.remedies] == ["learning_rate"]


@PROPERTY
@given(h=st.one_of(shaped(), wild()), classes=CLASSES)
def test_one_decision_title_headline_and_remedies_agree(h, classes):
    d = diagnose(h, num_classes=classes)
    assert d.title.startswith(verdict.TITLES[d.verdict]) or (d.verdict == "diverged" and d.title == "Unstable")
    keys = [r.key for r in d.remedies]
    if d.verdict == "diverged":
        assert keys == ["learning_rate"] and "Lower the learning rate" in d.headline
    elif d.verdict in ("still_improving", "too_few_epochs"):
        assert keys[0] == "more_epochs"
    elif d.verdict == "good_fit":
        assert keys == []
    if d.verdict != "too_few_epochs":
        assert "too few" not in d.headline
    if "underfitting" in d.title.lower() and d.verdict == "still_improving":
        assert d.headline.startswith("The network is underfitting so far:")
    if d.numbers["epochs_run"] >= verdict.MIN_EPOCHS_TO_JUDGE:
        assert "last third" not in " ".join(texts(d))


def test_the_checker_catches_the_sentences_the_issue_found():
    from types import SimpleNamespace

    def fake(headline, evidence=()):
        return SimpleNamespace(title="Underfitting", headline=headline, evidence=list(evidence), remedies=[])

    old = "The network is not learning much: both losses stay high and validation loss has stopped falling."
    assert says_not_falling(fake(old))
    assert says_not_falling(fake("x", ["Validation loss was lowest at epoch 7 (0.412) and rose to 0.655 by epoch 20."]))
    assert not says_not_falling(
        fake(
            "x",
            ["Over epochs 1-2 validation loss fell from 0.938 to 0.910 and training loss rose from 0.981 to 0.982."],
        )
    )
