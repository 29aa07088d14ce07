"""``python -m core challenge list|show ID|board ID [--csv] [--json]``: the class challenges, for the teacher on
the server (it reads the run store, as the dashboard's teacher sees it: hidden scores, names and runs included).

The hidden images' names are never printed: the board says how many there are and how each run scored on them.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json

from core.base import UserError, plural, print_table
from core.lab import ChallengeBoard, board_csv
from core.store import RunStore

LIST_COLUMNS = [("id", "Id"), ("title", "Title"), ("images", "Images (hidden)"), ("state", "State"), ("runs", "Runs")]
BOARD_COLUMNS = [
    ("rank", "Rank"),
    ("name", "Student"),
    ("val", "Validation"),
    ("score", "Hidden test"),
    ("params", "Parameters"),
    ("epochs", "Epochs"),
    ("seconds", "Seconds"),
    ("entries", "Runs"),
    ("run_id", "Run"),
]


def _when(ts: float | None) -> str:
    return "none" if ts is None else dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def _state(ch) -> str:
    if ch.closed():
        return "closed"
    return "revealed" if ch.revealed else "open"


def cmd_challenge(args: argparse.Namespace, store: RunStore) -> int:
    """List the challenges, show one, or print its board (the teacher's: scores, names and runs)."""
    board = ChallengeBoard(store)
    if args.action == "list":
        if args.challenge_id is not None:
            raise UserError(f"'challenge list' takes no id (got '{args.challenge_id}'): use 'challenge show ID'.")
        return _list(board, args)
    if args.challenge_id is None:
        raise UserError(f"Say which challenge: 'challenge {args.action} ID' ('challenge list' shows the ids).")
    ch = board.get(args.challenge_id)  # ChallengeError (a UserError): one line, exit 2
    if args.action == "show":
        return _show(board, ch, args)
    rows = board.board(ch.id, teacher=True)
    if args.csv:
        print(board_csv(rows), end="")
        return 0
    if args.json:
        print(json.dumps([dataclasses.asdict(r) for r in rows]))
        return 0
    if not rows:
        print(f"No run entered in '{ch.title}' yet.")
        return 0
    print_table(
        [
            {
                "rank": r.rank,
                "name": r.name,
                "val": "-" if r.val_accuracy is None else f"{r.val_accuracy:.1%}",
                "score": f"{r.score:.1%}",
                "params": f"{r.params:,}",
                "epochs": r.epochs,
                "seconds": f"{r.seconds:.0f}",
                "entries": r.entries,
                "run_id": r.run_id,
            }
            for r in rows
        ],
        BOARD_COLUMNS,
    )
    shown = "shown to the students" if ch.revealed else "not shown to the students yet"
    print(f"Ranked by the hidden test accuracy ({plural(ch.hidden_count, 'image')}, {shown}); ties: fewer parameters.")
    return 0


def _list(board: ChallengeBoard, args: argparse.Namespace) -> int:
    challenges = board.list()
    runs = {ch.id: len(board.board(ch.id, teacher=True)) for ch in challenges}
    if args.json:
        print(json.dumps([{**_facts(ch), "students": runs[ch.id]} for ch in challenges]))
        return 0
    if not challenges:
        print("No challenge yet: a teacher creates one on the dashboard's Challenge board page.")
        return 0
    print_table(
        [
            {
                "id": ch.id,
                "title": ch.title,
                "images": f"{ch.public_count + ch.hidden_count:,} ({ch.hidden_count:,})",
                "state": _state(ch),
                "runs": runs[ch.id],
            }
            for ch in challenges
        ],
        LIST_COLUMNS,
    )
    return 0


def _facts(ch) -> dict:
    return {
        "id": ch.id,
        "title": ch.title,
        "brief": ch.brief,
        "source": ch.source,
        "students_folder": ch.public,
        "classes": ch.classes,
        "budgets": dataclasses.asdict(ch.budgets),
        "deadline": ch.deadline,
        "closed": ch.closed(),
        "revealed": ch.revealed,
        "names_revealed": ch.names_revealed,
        "images": ch.public_count,
        "hidden_images": ch.hidden_count,
    }


def _show(board: ChallengeBoard, ch, args: argparse.Namespace) -> int:
    students = len(board.board(ch.id, teacher=True))
    if args.json:
        print(json.dumps({**_facts(ch), "students": students}))
        return 0
    b = ch.budgets
    limits = {
        "parameters": f"{b.max_params:,}" if b.max_params else "no limit",
        "epochs": b.max_epochs or "no limit",
        "trainings per student": b.max_trainings or "no limit",
        "seconds per training": f"{b.max_seconds:g}" if b.max_seconds else "no limit (the server's own holds)",
    }
    lines = [
        ("Title", ch.title),
        ("Id", ch.id),
        ("Data", ch.source),
        ("Students' images", f"{ch.public} ({plural(ch.public_count, 'image')})"),
        ("Hidden test images", f"{ch.hidden_count:,} (never printed)"),
        ("Classes", ", ".join(ch.classes)),
        ("Budgets", "; ".join(f"{k}: {v}" for k, v in limits.items())),
        ("Deadline", _when(ch.deadline) + (" (closed)" if ch.closed() else "")),
        ("Scores shown", "yes" if ch.revealed else "no"),
        ("Names shown", "yes" if ch.names_revealed else "no"),
        ("Students on the board", students),
        ("Brief", ch.brief or "-"),
    ]
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        print(f"{k.ljust(width)}  {v}")
    return 0
