"""The text helpers every table and message shares."""

import io

from core.base.tables import number, plural, print_table, stored_line


def test_plural_says_one_of_a_thing_and_counts_the_rest():
    assert [plural(n, "epoch") for n in (0, 1, 2)] == ["0 epochs", "1 epoch", "2 epochs"]
    assert plural(1, "class", "classes") == "1 class" and plural(3, "class", "classes") == "3 classes"
    assert plural(12_000, "image") == "12,000 images" == f"{number(12_000)} images"


def test_number_formats_each_kind_of_cell():
    assert [number(None), number(True), number(1234), number(0.25), number(0.25, ".3f"), number("x")] == [
        "-",
        "True",  # a bool is not a count
        "1,234",
        "0.2",
        "0.250",
        "x",
    ]


def test_print_table_aligns_columns_to_the_widest_cell():
    out = io.StringIO()
    rows = [{"run": "a1", "acc": "0.91", "note": "best"}, {"run": "b22222", "acc": None}]
    print_table(rows, [("run", "Run"), ("acc", "Accuracy"), ("note", "Note")], file=out)
    assert out.getvalue().splitlines() == [
        "Run     Accuracy  Note",
        "a1      0.91      best",
        "b22222  -         -",  # None and a missing cell both read "-"; no trailing spaces
    ]


def test_stored_line_says_what_came_back_from_the_store():
    assert stored_line(4, 1, "point") == "3 points trained, 1 came back from the store."
    assert stored_line(4, 4, "point") == "All 4 points were stored already: nothing was trained."
    assert stored_line(1, 1, "repeat") == "The repeat was stored already: nothing was trained."
    assert stored_line(2, 0, "repeat") == "2 repeats trained, 0 came back from the store."
