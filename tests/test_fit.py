"""fit_phase and the keep-best-weights rule, on a real Keras fit whose validation loss is known to turn.

The model is one Dense(2) softmax unit on a constant input, trained by SGD on 8 samples that are all class 0;
the validation samples are the same input, 80% class 0 and 20% class 1. Every training sample is the same, so
the order of batches cannot matter: each epoch is one identical step and the run is the same on any machine.
Training pushes p = p(class 0) from 0.5 towards 1 (0.659, 0.752, 0.808, 0.844, ... by hand: each step adds
4 x learning rate x (1 - p) to the logits' difference), so the validation loss -(0.8 ln p + 0.2 ln(1 - p)) falls
while p is well below 0.8 and rises for good after: its lowest point is epoch 3 (BEST), and the weights after
BEST epochs of a long run are those of a run of BEST epochs.
"""

import threading
import time

import numpy as np
import pytest
from test_runstore import _record

from core.base.config import TrainConfig
from core.store.runstore import RunStore
from core.training.fit import ProgressEvent, class_weights, compile_model, fit_phase, keeps_best_weights

X_TRAIN = np.ones((8, 1), dtype="float32")
Y_TRAIN = np.zeros(8, dtype="int64")
X_VAL = np.ones((10, 1), dtype="float32")
Y_VAL = np.array([0] * 8 + [1] * 2, dtype="int64")
CFG = TrainConfig(
    optimizer="sgd", learning_rate=0.33, loss="sparse", batch_size=8, epochs=8
)  # precision: see model_after
BEST = 3  # the epoch of the lowest validation loss (see the docstring)


def model_after(epochs: int | None, cfg: TrainConfig = CFG, dtype: str = "float32", **kw):
    """A fresh unit (zero weights: p = 0.5), compiled, fitted for ``epochs`` (none: not fitted).

    float32 by default, and not by precaution: these tests are about the numbers worked by hand above, which
    bfloat16 rounds by up to 2^-8 (the bfloat16 unit has its own test below). TrainConfig.precision plays no
    part here: it is applied where train_model builds a model, not by compile_model or fit_phase.
    """
    import keras

    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(2, activation="softmax", kernel_initializer="zeros", dtype=dtype)]
    )
    compile_model(model, cfg)
    if epochs is None:
        return model, None
    out = fit_phase(model, cfg, (X_TRAIN, Y_TRAIN), (X_VAL, Y_VAL), epochs=epochs, **kw)
    return model, out


def same_weights(a, b):
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-7)


def val_loss(model) -> float:
    return float(model.evaluate(X_VAL, Y_VAL, verbose=0)[0])


@pytest.fixture(scope="module")
def after_best():
    """The unit after exactly BEST epochs: the weights the rule must put back."""
    return model_after(BEST)[0]


def test_the_rule():
    assert keeps_best_weights(TrainConfig(early_stopping=0))  # the course's checkpoint
    assert keeps_best_weights(TrainConfig(early_stopping=0, restore_best=False))  # restore_best only for stopping
    assert keeps_best_weights(TrainConfig(early_stopping=2, restore_best=True))
    assert not keeps_best_weights(TrainConfig(early_stopping=2, restore_best=False))  # Keras' EarlyStopping default


def test_the_validation_loss_turns_at_best():
    model, out = model_after(8)
    v = out.history["val_loss"]
    assert len(v) == 8 and set(out.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(a > b for a, b in zip(v[:BEST], v[1:BEST], strict=False))  # falls until BEST
    assert all(a < b for a, b in zip(v[BEST - 1 :], v[BEST:], strict=False))  # then rises every epoch
    assert out.history["loss"][0] > out.history["loss"][-1]  # training loss falls throughout
    # the numbers by hand: p after each epoch, and the validation loss it gives
    p_best = model_after(BEST)[0].predict(X_VAL[:1], verbose=0)[0, 0]
    assert p_best == pytest.approx(0.8080, abs=2e-3)
    assert v[BEST - 1] == pytest.approx(-(0.8 * np.log(p_best) + 0.2 * np.log(1 - p_best)), rel=1e-4)
    assert min(v[BEST - 2], v[BEST]) - v[BEST - 1] > 0.005  # a clear minimum, not a rounding tie
    assert len(out.epoch_seconds) == 8 and all(s > 0 for s in out.epoch_seconds)


def test_without_early_stopping_the_best_epochs_weights_are_put_back(after_best):
    model, out = model_after(8)
    assert (out.best_epoch, out.restored_epoch, out.stopped_early, out.stopped_by_user) == (BEST, BEST, False, False)
    assert out.best_value == pytest.approx(out.history["val_loss"][BEST - 1])
    same_weights(model, after_best)
    assert val_loss(model) == pytest.approx(out.history["val_loss"][BEST - 1], rel=1e-5)
    assert val_loss(model) < out.history["val_loss"][-1]  # not the last epoch's


def test_a_bfloat16_unit_keeps_its_best_epoch_too():
    """The same unit in mixed bfloat16 (the precision "auto" picks on a CPU with AVX512_BF16): p is rounded to
    bfloat16's 8 bits (0.66, 0.754, 0.809, 0.844), the validation loss still turns at BEST (0.507, 0.501, 0.507
    around it), and the rule puts back the weights of a bfloat16 run of BEST epochs."""
    model, out = model_after(8, dtype="mixed_bfloat16")
    assert model.layers[-1].compute_dtype == "bfloat16" and model.layers[-1].variable_dtype == "float32"
    v = out.history["val_loss"]
    assert min(range(len(v)), key=v.__getitem__) == BEST - 1
    assert (out.best_epoch, out.restored_epoch) == (BEST, BEST)
    same_weights(model, model_after(BEST, dtype="mixed_bfloat16")[0])
    p_best = float(model.predict(X_VAL[:1], verbose=0)[0, 0])
    assert p_best == pytest.approx(0.8080, rel=2**-7)  # the hand-worked p, to one bfloat16 step


def test_early_stopping_with_restore_puts_the_best_epoch_back(after_best):
    model, out = model_after(8, CFG.replace(early_stopping=2, restore_best=True))
    assert out.stopped_early and len(out.history["val_loss"]) == BEST + 2  # patience 2 after the best
    assert (out.best_epoch, out.restored_epoch) == (BEST, BEST)
    same_weights(model, after_best)


def test_early_stopping_without_restore_keeps_the_last_epoch(after_best):
    cfg = CFG.replace(early_stopping=2, restore_best=False)
    model, out = model_after(8, cfg)
    assert out.stopped_early and len(out.history["val_loss"]) == BEST + 2
    assert (out.best_epoch, out.restored_epoch) == (BEST, None)  # the best is still reported, not restored
    same_weights(model, model_after(BEST + 2, cfg.replace(early_stopping=10))[0])  # never fires: the last kept
    assert val_loss(model) == pytest.approx(out.history["val_loss"][-1], rel=1e-5)
    assert val_loss(model) > val_loss(after_best)


def test_patience_longer_than_the_run_is_not_early_stopping():
    _, out = model_after(6, CFG.replace(early_stopping=5, restore_best=False))
    assert not out.stopped_early and len(out.history["loss"]) == 6
    assert out.restored_epoch is None  # early stopping was on: its rule holds even when it never fired


def test_the_monitor_decides_the_best_epoch():
    # val_accuracy is 0.8 from the first epoch on (p(class 0) > 0.5): the first of equal values is the best
    model, out = model_after(5, CFG.replace(monitor="val_accuracy"))
    assert out.history["val_accuracy"] == pytest.approx([0.8] * 5)
    assert (out.best_epoch, out.restored_epoch, out.best_value) == (1, 1, pytest.approx(0.8))
    same_weights(model, model_after(1)[0])


def test_progress_events_count_across_phases():
    events: list[ProgressEvent] = []
    model_after(2, first_epoch=3, total_epochs=10, phase="fine-tune", progress=events.append)
    assert [e.kind for e in events] == ["start", "batch", "epoch", "batch", "epoch"]
    assert [e.epoch for e in events] == [4, 4, 4, 5, 5]
    assert {(e.epochs, e.phase) for e in events} == {(10, "fine-tune")}
    assert [(e.batch, e.batches) for e in events if e.kind == "batch"] == [(1, 1), (1, 1)]
    epoch_logs = [e.logs for e in events if e.kind == "epoch"]
    assert set(epoch_logs[0]) >= {"loss", "val_loss", "accuracy", "val_accuracy"}


def test_a_stop_request_ends_the_fit_after_the_next_batch_and_keeps_the_best_so_far():
    stop = threading.Event()

    def progress(ev):
        if ev.kind == "epoch" and ev.epoch == 2:
            stop.set()

    model, out = model_after(8, progress=progress, stop_event=stop)
    assert out.stopped_by_user and not out.stopped_early
    assert len(out.history["loss"]) == 3  # epoch 3's one batch ran, then it stopped
    assert (out.best_epoch, out.restored_epoch) == (BEST, BEST)


def test_the_stored_checkpoint_holds_the_best_epochs_weights(tmp_path, after_best):
    model, out = model_after(8)
    store = RunStore(tmp_path / "home")
    store.save(_record(run_id="fit"), model=model)
    same_weights(store.load_model("fit"), after_best)


def test_balanced_class_weights_are_scikit_learns():
    from sklearn.utils.class_weight import compute_class_weight

    y = np.array([0] * 6 + [1] * 2 + [2] * 4)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=y)
    assert class_weights(y, "balanced") == pytest.approx(dict(enumerate(expected)))
    assert class_weights(np.eye(3)[y], "balanced") == pytest.approx(dict(enumerate(expected)))  # one-hot labels
    assert class_weights(y, "none") is None


def test_fit_trains_with_the_class_weights():
    """6 images of class 0, 2 of class 1, all alike: unweighted, the unit learns p(1) = 2/8; with balanced weights
    both classes weigh the same, so the gradient at the start (p = 1/2) is zero and it stays there."""
    x, y = np.ones((8, 1), dtype="float32"), np.array([0] * 6 + [1] * 2, dtype="int64")
    cfg = CFG.replace(learning_rate=0.5, epochs=60)
    probs = {}
    for how in ("none", "balanced"):
        model, out = model_after(None, cfg.replace(class_weight=how))
        fit_phase(model, cfg.replace(class_weight=how), (x, y), (x, y), epochs=60)
        probs[how] = float(model.predict(x[:1], verbose=0)[0, 1])
    assert probs["none"] == pytest.approx(0.25, abs=0.03)
    assert probs["balanced"] == pytest.approx(0.5, abs=0.03)


class Spent:
    """A budget that runs out when told: what these tests check is where the fit stops, not the clock."""

    def __init__(self):
        self.out = threading.Event()

    def reached(self) -> bool:
        return self.out.is_set()


def run_out_after(epoch: int):
    budget = Spent()

    def progress(ev):
        if ev.kind == "epoch" and ev.epoch == epoch:
            budget.out.set()

    return budget, progress


def test_a_time_budget_ends_the_fit_after_the_batch_it_runs_out_in_and_keeps_the_best(after_best):
    budget, progress = run_out_after(5)
    model, out = model_after(8, progress=progress, budget=budget)
    assert out.stopped_by_budget and not out.stopped_by_user and not out.stopped_early
    assert len(out.history["loss"]) == 6  # epoch 6's one batch ran, then it stopped
    assert (out.best_epoch, out.restored_epoch) == (BEST, BEST)
    same_weights(model, after_best)


def test_a_budget_that_runs_out_in_the_last_batch_cut_nothing():
    budget, progress = run_out_after(7)  # epoch 8's batch is the last one planned
    _, out = model_after(8, progress=progress, budget=budget)
    assert not out.stopped_by_budget and len(out.history["loss"]) == 8


def test_a_time_budget_counts_from_when_it_was_made():
    from core.training.fit import TimeBudget

    assert TimeBudget.of(0) is None and TimeBudget.of(None) is None
    assert not TimeBudget.of(3600).reached()
    assert TimeBudget(5.0, started=time.perf_counter() - 6).reached()
