"""
Model FLOP utilisation (MFU): the share of a peak FLOP/s that training reaches. train.py logs it per step and
experiments/bench.py reports it.

The peak is a known bf16 tensor-core figure for datacenter GPUs; on a CPU, which has no such figure, it is a
float32 matmul timed in this process, so the number says how close a step comes to what this machine's BLAS can
do. A shared CPU may be slowed while that matmul runs: a step that then goes faster than the "peak" proves it, and
raises the peak to the step's rate, so MFU is a share of the best this machine was seen to do and never above 100%.
"""

import time

import torch

GPU_PEAKS = (("H100", 989e12), ("H200", 989e12), ("A100", 312e12))  # dense bf16 / fp16 FLOP/s
CPU_PEAK = {}  # thread count -> the best FLOP/s seen on this CPU: the timed matmul, or a faster training step


def peak_flops(device, dtype):
    """-> peak FLOP/s on device for dtype, or None where none is known (another GPU, or float32 on a GPU)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, peak in GPU_PEAKS:
            if key in name and dtype in (torch.bfloat16, torch.float16):
                return peak
        return None
    if device.type != "cpu":
        return None
    threads = torch.get_num_threads()
    # once per process and thread count: several runs in one process (experiments/bench.py) share it
    if threads not in CPU_PEAK:
        n = 1024
        gen = torch.Generator().manual_seed(0)  # not the global RNG: a resumed run must draw what the original drew
        x, y = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
        times = []
        for _ in range(20):  # the fastest of several: a busy moment on a shared machine must not lower the peak
            t0 = time.perf_counter()
            x @ y
            times.append(time.perf_counter() - t0)
        CPU_PEAK[threads] = 2 * n ** 3 / min(times)
    return CPU_PEAK[threads]


def utilisation(achieved, peak, device):
    """-> (MFU, the peak it was taken against) for achieved FLOP/s; (None, None) without a peak. On a CPU an achieved
    rate above the peak becomes the peak, here and for later runs in this process."""
    if peak is None:
        return None, None
    if device.type == "cpu" and achieved > peak:
        peak = CPU_PEAK[torch.get_num_threads()] = achieved
    return achieved / peak, peak
