"""Scoring test predictions on hand-computed numbers: accuracy, cross-entropy, precision/recall/F1, cells."""

import json
import math

import numpy as np
import pytest

from core.results.evaluation import TestReport, cell_indices, evaluate, top_classes, worst_confusion

# Nine test items, three classes. Rows are the softmax outputs; the argmax is the prediction.
Y3 = [0, 0, 0, 0, 1, 2, 2, 2, 2]
P3 = [
    [0.80, 0.10, 0.10],  # 0: true 0, pred 0
    [0.60, 0.30, 0.10],  # 1: true 0, pred 0
    [0.50, 0.25, 0.25],  # 2: true 0, pred 0
    [0.30, 0.60, 0.10],  # 3: true 0, pred 1  (wrong, 0.60 sure)
    [0.20, 0.70, 0.10],  # 4: true 1, pred 1
    [0.90, 0.05, 0.05],  # 5: true 2, pred 0  (wrong, 0.90 sure)
    [0.55, 0.15, 0.30],  # 6: true 2, pred 0  (wrong, 0.55 sure)
    [0.10, 0.50, 0.40],  # 7: true 2, pred 1  (wrong, 0.50 sure)
    [0.20, 0.10, 0.70],  # 8: true 2, pred 2
]
NAMES3 = ["sandstone", "shale", "granite"]


def test_evaluate_matches_hand_computed_numbers():
    r = evaluate(np.array(Y3), np.array(P3), NAMES3)
    assert r.accuracy == pytest.approx(5 / 9)
    # Cross-entropy: mean of -ln(probability given to the true class).
    true_p = [0.80, 0.60, 0.50, 0.30, 0.70, 0.05, 0.30, 0.40, 0.70]
    assert r.loss == pytest.approx(-sum(math.log(p) for p in true_p) / 9)
    assert r.loss == pytest.approx(0.94005, abs=1e-5)
    # Rows are the true class, columns the predicted one.
    assert r.confusion_matrix == [[3, 1, 0], [0, 1, 0], [2, 1, 1]]
    # precision = diagonal / column sum (5, 3, 1); recall = diagonal / row sum (4, 1, 4).
    expected = {
        "sandstone": (3 / 5, 3 / 4, 2 / 3, 4),  # f1 = 2*0.6*0.75/1.35
        "shale": (1 / 3, 1 / 1, 1 / 2, 1),  # f1 = 2*(1/3)*1/(4/3)
        "granite": (1 / 1, 1 / 4, 2 / 5, 4),  # f1 = 2*1*0.25/1.25
    }
    for row in r.per_class:
        p, rec, f1, sup = expected[row["class"]]
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((p, rec, f1))
        assert row["support"] == sup
    assert r.macro["precision"] == pytest.approx((0.6 + 1 / 3 + 1) / 3)
    assert r.macro["recall"] == pytest.approx((0.75 + 1 + 0.25) / 3)
    assert r.macro["f1"] == pytest.approx((2 / 3 + 0.5 + 0.4) / 3)
    assert r.weighted["precision"] == pytest.approx((4 * 0.6 + 1 / 3 + 4 * 1) / 9)
    assert r.weighted["recall"] == pytest.approx(5 / 9)
    assert r.weighted["f1"] == pytest.approx((4 * 2 / 3 + 0.5 + 4 * 0.4) / 9)
    assert r.predicted == [0, 0, 0, 1, 1, 0, 0, 1, 2]
    assert r.confidence == pytest.approx([0.8, 0.6, 0.5, 0.6, 0.7, 0.9, 0.55, 0.5, 0.7])
    assert r.most_confident_wrong == [5, 3, 6, 7]
    assert r.loss_name == "categorical" and r.notes == []


def test_most_confident_wrong_is_capped_and_stable_on_ties():
    assert evaluate(Y3, P3, NAMES3, top_wrong=2).most_confident_wrong == [5, 3]
    assert evaluate(Y3, P3, NAMES3, top_wrong=0).most_confident_wrong == []
    y = [0, 0, 1, 1]
    p = [[0.3, 0.7], [0.3, 0.7], [0.7, 0.3], [0.4, 0.6]]  # items 0-2 wrong, 0.7 sure each
    assert evaluate(y, p, ["a", "b"]).most_confident_wrong == [0, 1, 2]


def test_cell_indices():
    r = evaluate(Y3, P3, NAMES3)
    assert cell_indices(r, 2, 0) == [5, 6]
    assert cell_indices(r, "sandstone", "shale") == [3]
    assert cell_indices(r, 1, 2) == []
    for i in range(3):
        for j in range(3):
            assert len(cell_indices(r, i, j)) == r.confusion_matrix[i][j]
    assert cell_indices((Y3, P3), 2, 0) == [5, 6]  # probabilities ...
    assert cell_indices((Y3, r.predicted), 2, 1) == [7]  # ... or predicted classes
    with pytest.raises(ValueError, match="not a class"):
        cell_indices(r, "basalt", 0)
    with pytest.raises(ValueError, match=r"class index in \[0, 2\]"):
        cell_indices(r, 3, 0)
    with pytest.raises(ValueError, match="names can only be used with a TestReport"):
        cell_indices((Y3, P3), "shale", 0)
    with pytest.raises(ValueError, match="same length"):
        cell_indices((Y3, r.predicted[:4]), 0, 0)


def test_absent_class_still_gets_a_row_and_a_note():
    y = [0, 0, 1, 1]
    p = [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7]]
    r = evaluate(y, p, ["a", "b", "c"])
    assert [row["class"] for row in r.per_class] == ["a", "b", "c"]
    c = r.per_class[2]
    assert (c["precision"], c["recall"], c["f1"], c["support"]) == (0.0, 0.0, 0.0, 0)
    assert r.confusion_matrix == [[1, 1, 0], [0, 1, 1], [0, 0, 0]]
    assert r.macro["recall"] == pytest.approx((0.5 + 0.5 + 0) / 3)  # sklearn counts the absent class as 0
    assert r.weighted["recall"] == pytest.approx(0.5)  # support 0 weighs nothing
    assert any("No test images of 'c'" in n for n in r.notes)


def test_never_predicted_class_is_noted():
    r = evaluate([0, 1, 1], [[0.9, 0.1], [0.8, 0.2], [0.6, 0.4]], ["a", "b"])
    assert r.per_class[1]["precision"] == 0.0 and r.per_class[1]["recall"] == 0.0
    assert any("never predicted 'b'" in n for n in r.notes)


def test_loss_is_clipped_like_keras():
    r = evaluate([0, 1], [[1.0, 0.0], [1.0, 0.0]], ["a", "b"])
    # -ln(1 - 1e-7) ~ 1e-7 for the sure right answer, -ln(1e-7) = 16.118 for the sure wrong one.
    assert r.loss == pytest.approx((16.11809565 + 1e-7) / 2)
    assert math.isfinite(r.loss)


def test_test_report_round_trips_through_json():
    r = evaluate(np.array(Y3, dtype=np.int32), np.array(P3, dtype=np.float32), NAMES3, loss="sparse")
    back = TestReport.from_dict(json.loads(json.dumps(r.to_dict(), allow_nan=False)))
    assert back.confusion_matrix == r.confusion_matrix and back.loss_name == "sparse"
    assert back.num_classes == 3 and cell_indices(back, 2, 0) == [5, 6]


@pytest.mark.parametrize(
    "y, p, names, kwargs, match",
    [
        (Y3, [row[:2] for row in P3], NAMES3, {}, "3 names but probs has 2 columns"),
        (Y3[:5], P3, NAMES3, {}, "5 labels but probs has 9 rows"),
        ([0, 3], [[0.5, 0.5, 0], [0.5, 0.5, 0]], NAMES3, {}, r"class 3, outside \[0, 2\]"),
        ([0, 1], [[2.0, 1.0, 0.5], [0.1, 3.0, 0.2]], NAMES3, {}, "softmax first"),
        ([0, 1], [[0.5, 0.4, 0.0], [0.3, 0.3, 0.4]], NAMES3, {}, "Row 0 sums to 0.9000"),
        (np.eye(3)[[0, 1]], [[0.5, 0.5, 0], [0.5, 0.5, 0]], NAMES3, {}, r"argmax\(axis=1\)"),
        ([0, 1], [0.5, 0.5], NAMES3, {}, r"shape \(N, C\)"),
        ([0.5, 1], [[0.5, 0.5, 0], [0.5, 0.5, 0]], NAMES3, {}, "integer class labels"),
        ([0, 1], [[np.nan, 0.5, 0.5], [0.5, 0.5, 0]], NAMES3, {}, "NaN"),
        ([], np.zeros((0, 3)), NAMES3, {}, "empty"),
        (Y3, P3, NAMES3, {"top_wrong": -1}, "top_wrong"),
        (Y3, P3, NAMES3, {"loss": "mse"}, "loss must be one of"),
    ],
)
def test_evaluate_rejects_bad_inputs_with_clear_messages(y, p, names, kwargs, match):
    with pytest.raises(ValueError, match=match):
        evaluate(y, p, names, **kwargs)


def test_worst_confusion_is_the_largest_mistake():
    # P3's mistakes: sandstone->shale once, granite->sandstone twice, granite->shale once.
    assert worst_confusion(evaluate(Y3, P3, NAMES3).confusion_matrix) == (2, 0)
    assert worst_confusion([[5, 1], [1, 5]]) == (1, 0)  # equal mistakes: the last in reading order
    assert worst_confusion([[4, 0, 0], [0, 3, 0], [0, 0, 2]]) == (0, 0)  # nothing confused
    assert worst_confusion([[0, 3], [7, 0]]) == (1, 0)


def test_top_classes_ranks_one_softmax_row():
    assert top_classes(P3[6]) == [0, 2, 1]
    assert top_classes(P3[7], k=2) == [1, 2]
    assert top_classes([0.4, 0.2, 0.4]) == [0, 2, 1]  # equal probabilities keep class order
    assert top_classes(np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32)) == [3, 2, 1]
