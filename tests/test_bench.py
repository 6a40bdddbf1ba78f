"""bench.py's memory reading and the measurement's promise that memory does not grow with the number of texts."""

import numpy as np
import pytest

from experiments import bench


def test_memory_peak_resets():
    block = np.ones(200 * 2**20 // 8)  # 200 MiB, touched
    del block
    _, peak_before = bench.memory_mib()
    _, peak_after = bench.memory_mib(reset_peak=True)
    assert peak_before - peak_after > 150


def test_measurement_memory_does_not_grow_with_texts():
    # a small model at T = 256, so that keeping each text's 5 layers of T x T float64 cosines would cost 2.6 MiB a
    # text (73 MiB more for the 28 extra texts) while what measure.py keeps, a few C-vectors per text, is 10 KiB
    shape = dict(n_layer=4, n_head=4, n_embd=128, block_size=256)
    few, many = bench.bench_measure(4, 256, "cpu", **shape), bench.bench_measure(32, 256, "cpu", **shape)
    assert many["texts_per_s"] > 0 and few["texts_per_s"] > 0
    # 8x the texts: the peak above the resident baseline stays within a few MiB (running sums, not N matrices)
    assert (many["peak_rss_mib"] - many["rss_before_mib"]) - (few["peak_rss_mib"] - few["rss_before_mib"]) < 20


@pytest.mark.parametrize("argv,line", [
    (["--iters", "0"], "error: --iters must be at least 1, got 0"),
    (["--rounds", "0"], "error: --rounds must be at least 1, got 0"),
    (["--measure_texts", "10,x"], "error: --measure_texts must be a comma list of positive numbers, got '10,x'"),
    (["--iters", "many"], "error: argument --iters: invalid int value: 'many' (see python experiments/bench.py --help)"),
])
def test_bad_flags_name_bench_flags(argv, line):
    with pytest.raises(SystemExit) as e:
        bench.main(argv)
    assert e.value.code == line
