"""bench.py's memory reading and the measurement's promise that memory does not grow with the number of texts."""

import numpy as np

import bench


def test_memory_peak_resets():
    block = np.ones(200 * 2**20 // 8)  # 200 MiB, touched
    del block
    _, peak_before = bench.memory_mib()
    _, peak_after = bench.memory_mib(reset_peak=True)
    assert peak_before - peak_after > 150


def test_measurement_memory_does_not_grow_with_texts():
    few, many = bench.bench_measure(4, 64, "cpu"), bench.bench_measure(32, 64, "cpu")
    assert many["texts_per_s"] > 0 and few["texts_per_s"] > 0
    # 8x the texts: the peak above the resident baseline stays within a few MiB (running sums, not N matrices)
    assert (many["peak_rss_mib"] - many["rss_before_mib"]) - (few["peak_rss_mib"] - few["rss_before_mib"]) < 20
