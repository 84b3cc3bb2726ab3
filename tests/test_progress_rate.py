"""The progress line's rate reads like the summary's: two decimals below 10 calls/s."""

from promptlab.progress import rate_text


def test_a_slow_models_rate_is_not_shown_as_zero() -> None:
    assert rate_text(0.4) == "0.40"
    assert rate_text(9.994) == "9.99"
    assert rate_text(1234.4) == "1,234"
    assert rate_text(0.0) == "0.00"
