"""Training: the fit loop (best-epoch weights, early stopping), training from scratch and transfer
learning on VGG16's base features, and the experiment (data, training, evaluation, the stored run).
"""

from core.training.base_features import FEATURES_KIND, cached_features, extract_features
from core.training.experiment import (
    NothingToKeep,
    PrecisionMismatch,
    RunArtifacts,
    check_submission,
    compute_run,
    predict_images,
    resolve,
    run_experiment,
    save_run,
    stop_reason,
    stored_answer,
)
from core.training.fit import BUDGET_STOP, ProgressEvent, TimeBudget, budget_stop_text, predict_proba
from core.training.heldout import (
    HeldOutUnavailable,
    run_calibration,
    run_mislabels,
    stored_validation,
    validation_images,
    validation_predictions,
)
from core.training.lr_find import (
    LRFind,
    LRRange,
    RangeTestStopped,
    find_lr,
    lr_find_key,
    stored_lr_find,
)
from core.training.train import train_model
from core.training.transfer import train_transfer

__all__ = [
    "LRFind",
    "LRRange",
    "RangeTestStopped",
    "find_lr",
    "lr_find_key",
    "stored_lr_find",
    "BUDGET_STOP",
    "FEATURES_KIND",
    "HeldOutUnavailable",
    "NothingToKeep",
    "PrecisionMismatch",
    "ProgressEvent",
    "RunArtifacts",
    "TimeBudget",
    "budget_stop_text",
    "cached_features",
    "check_submission",
    "compute_run",
    "extract_features",
    "predict_images",
    "predict_proba",
    "resolve",
    "run_calibration",
    "run_experiment",
    "run_mislabels",
    "save_run",
    "stop_reason",
    "stored_answer",
    "stored_validation",
    "train_model",
    "train_transfer",
    "validation_images",
    "validation_predictions",
]
