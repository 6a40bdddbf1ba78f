"""tests/conftest.py: @pytest.mark.slow tests are skipped unless --runslow is given."""

from pathlib import Path

pytest_plugins = ["pytester"]


def test_slow_tests_run_only_with_runslow(pytester):
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makeini("[pytest]\nmarkers =\n    slow: longer runs\n")
    pytester.makepyfile("""
        import pytest

        @pytest.mark.slow
        def test_long():
            pass

        def test_short():
            pass
    """)
    pytester.runpytest().assert_outcomes(passed=1, skipped=1)
    pytester.runpytest("--runslow").assert_outcomes(passed=2)
