"""The text helpers every table and message shares."""

from core.base.tables import number, plural


def test_plural_says_one_of_a_thing_and_counts_the_rest():
    assert [plural(n, "epoch") for n in (0, 1, 2)] == ["0 epochs", "1 epoch", "2 epochs"]
    assert plural(1, "class", "classes") == "1 class" and plural(3, "class", "classes") == "3 classes"
    assert plural(12_000, "image") == "12,000 images" == f"{number(12_000)} images"
