"""The overfitting lab: its five variants of one network, and what their runs say together; and the class's
challenges (a hidden test split, budgets, entries scored by the server, the board)."""

from core.jobs.challenge_rules import CONTROLS, OverBudget, parameters_control
from core.lab.challenge import (
    BoardRow,
    Budgets,
    Challenge,
    ChallengeBoard,
    ChallengeError,
    board_csv,
    hidden_split,
    rank_entries,
)
from core.lab.results import LAB_COLUMNS, lab_cells, lab_curves, lab_rows, lab_summary
from core.lab.variants import (
    DEFAULT_EPOCHS,
    DEFAULT_FRACTION,
    DEFAULT_SEED,
    LAB_DROPOUT,
    LAB_PATIENCE,
    PRESETS,
    VARIANT_NAMES,
    lab_variants,
    run_lab,
)

__all__ = [
    "CONTROLS",
    "BoardRow",
    "OverBudget",
    "parameters_control",
    "Budgets",
    "Challenge",
    "ChallengeBoard",
    "ChallengeError",
    "board_csv",
    "hidden_split",
    "rank_entries",
    "DEFAULT_EPOCHS",
    "DEFAULT_FRACTION",
    "DEFAULT_SEED",
    "LAB_COLUMNS",
    "LAB_DROPOUT",
    "LAB_PATIENCE",
    "PRESETS",
    "VARIANT_NAMES",
    "lab_cells",
    "lab_curves",
    "lab_rows",
    "lab_summary",
    "lab_variants",
    "run_lab",
]
