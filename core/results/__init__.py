"""What runs say: curves, test-set evaluation, the verdict and its remedies, the diagnosis, comparisons,
repeats over seeds, sweeps, the report. ``core.results.export`` (a notebook-style script and a model
file, TensorFlow at import) is imported as a module, not re-exported here. Calibration: reliability bins,
expected calibration error and temperature scaling of predictions given (``core.results.calibration``);
the held-out images most likely mislabelled, by the probability of their own label (``core.results.mislabel``).
"""

from core.results.calibration import (
    N_BINS,
    Calibration,
    Reliability,
    calibrate,
    confidence_sentence,
    expected_calibration_error,
    fit_temperature,
    reliability,
    temperature_scale,
    temperature_sentence,
)
from core.results.compare import (
    compare_configs,
    compare_runs,
    comparison_rows,
    get_runs,
    run_metrics,
    run_settings,
    settings_table,
)
from core.results.curves import (
    HISTORY_KEYS,
    best_epoch,
    best_of,
    change,
    early_stopping_epochs,
    json_safe,
    moving_average,
    percent,
    read_history,
    relative,
    series,
    trend,
)
from core.results.diagnosis import TITLES, VERDICTS, Diagnosis, diagnose, diagnosis_of, fit_summary_text, in_few_words
from core.results.evaluation import TestReport, cell_indices, evaluate, top_classes, worst_confusion
from core.results.mislabel import TOP_K, Mislabels, Suspect, rank_mislabels
from core.results.remedies import Remedy
from core.results.repeats import (
    MAX_SEEDS,
    MIN_SEEDS,
    difference_sentence,
    mean_curves,
    repeat_summary,
    seed_configs,
    spread,
)
from core.results.report import report_html
from core.results.sweeps import MAX_POINTS, SWEEPABLE, grid_from_json, parse_grid, sweep_grid, sweep_points
from core.results.verdict import last_weights_text, thresholds_markdown, truth_table_text

__all__ = [
    "Diagnosis",
    "HISTORY_KEYS",
    "in_few_words",
    "MAX_POINTS",
    "MAX_SEEDS",
    "MIN_SEEDS",
    "Remedy",
    "SWEEPABLE",
    "TITLES",
    "TestReport",
    "VERDICTS",
    "best_epoch",
    "best_of",
    "cell_indices",
    "change",
    "compare_configs",
    "compare_runs",
    "comparison_rows",
    "diagnose",
    "diagnosis_of",
    "difference_sentence",
    "early_stopping_epochs",
    "evaluate",
    "fit_summary_text",
    "get_runs",
    "grid_from_json",
    "json_safe",
    "last_weights_text",
    "mean_curves",
    "moving_average",
    "parse_grid",
    "percent",
    "read_history",
    "relative",
    "repeat_summary",
    "report_html",
    "run_metrics",
    "run_settings",
    "seed_configs",
    "series",
    "settings_table",
    "spread",
    "sweep_grid",
    "sweep_points",
    "thresholds_markdown",
    "top_classes",
    "trend",
    "truth_table_text",
    "worst_confusion",
    # calibration
    "Calibration",
    "N_BINS",
    "Reliability",
    "calibrate",
    "confidence_sentence",
    "expected_calibration_error",
    "fit_temperature",
    "reliability",
    "temperature_scale",
    "temperature_sentence",
    # mislabelled images
    "Mislabels",
    "Suspect",
    "TOP_K",
    "rank_mislabels",
]
