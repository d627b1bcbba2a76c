"""Report tables read as a person expects: dict cells as field/value lines, report paths as links,
large numbers with separators, snake_case headers that may break, wide tables inside the page."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from dcloop.report import Section, _fmt, write_report


def test_dicts_links_numbers_and_headers(tmp_path: Path) -> None:
    other = tmp_path / "reports" / "optimize-1.html"
    section = Section("s").table(
        ["field", "decode_tokens_per_s"],
        [
            ["config", {"model": "tiny-cnn", "lr": 0.01, "nested": {"a": 1}}],
            ["report", str(other)],
            ["n", 27358.4],
        ],
    )
    page = write_report(tmp_path / "r.html", "t", [section]).read_text(encoding="utf-8")
    assert "<dt>model</dt><dd>tiny-cnn</dd>" in page and "<dt>a</dt><dd>1</dd>" in page
    assert "{'model'" not in page  # no raw dict
    assert f'<a href="{other.as_uri()}">optimize-1.html</a>' in page
    assert "<td>27,358</td>" in page and "e+04" not in page
    assert "decode_<wbr>tokens_<wbr>per_<wbr>s" in page
    assert '<div class="table"><table>' in page


@given(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e14, max_value=1e14)
    | st.sampled_from([9999.5, 9999.9, -9999.7, 0.5])
)
def test_numbers_never_show_exponents_above_one(value: float) -> None:
    shown = _fmt(value)
    if abs(value) >= 1:
        assert "e" not in shown
    assert abs(float(shown.replace(",", "")) - value) <= max(
        abs(value) * 1e-3, 0.5 if abs(value) >= 1e4 else 0
    )
