"""The progress line: every item passes through, counts add up, a log gets plain lines and a closing line."""

import io

from support.progress import fmt_seconds, progress


def test_items_pass_through_and_the_closing_line_counts_them():
    out = io.StringIO()  # not a terminal: plain lines
    assert list(progress(range(7), what="texts", scale=4, every=0, file=out)) == list(range(7))
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[-1].startswith("  texts 28/28,") and "done in" in lines[-1]
    assert lines[0].startswith("  texts 8/28,") and "left" in lines[0]  # the first item alone says nothing yet
    assert len(lines) == 7  # items 2..7 each (every=0), then the closing line


def test_a_slow_pace_gives_only_the_closing_line_and_resumed_loops_count_from_start():
    out = io.StringIO()
    list(progress([1, 2, 3], total=10, start=7, what="docs", every=3600, file=out))
    assert out.getvalue().splitlines() == [out.getvalue().splitlines()[-1]]
    assert out.getvalue().startswith("  docs 10/10,")


def test_seconds_read_at_a_glance():
    assert [fmt_seconds(s) for s in (4.4, 200, 3900)] == ["4 s", "3 min 20 s", "1 h 05 min"]
