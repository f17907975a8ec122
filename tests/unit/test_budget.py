"""The size budget for strings copied from data into partial results and summaries."""

from __future__ import annotations

from jobcore.budget import STRING_BUDGET, bound_strings, truncate


def test_long_strings_keep_their_beginning_and_name_their_true_length() -> None:
    # GIVEN a 52,428,800-character string, WHEN cut, THEN it fits the budget and says how long it was
    text = "é" * 52_428_800
    cut = truncate(text)
    assert len(cut) == STRING_BUDGET and cut.endswith("…[truncated: 52428800 characters]")
    assert cut.startswith("é" * 900)
    # AND cutting is idempotent, and short strings are untouched
    assert truncate(cut) == cut and truncate("short") == "short"


def test_every_string_in_a_document_is_bounded_keys_included_and_distinct() -> None:
    # GIVEN a result whose values and two keys are long, the keys with one beginning and length
    long_a, long_b = "k" * 5000 + "a", "k" * 5000 + "b"
    document = {"max": "x" * 10_000, "list": ["y" * 3000, 1], long_a: 1, long_b: 2}

    # WHEN bounded
    bounded = bound_strings(document)

    # THEN no string exceeds the budget and no key was lost
    assert len(bounded["max"]) == STRING_BUDGET and len(bounded["list"][0]) == STRING_BUDGET
    assert len(bounded) == 4 and all(len(key) <= STRING_BUDGET for key in bounded)
    assert sorted(v for k, v in bounded.items() if k.startswith("kkk")) == [1, 2]
