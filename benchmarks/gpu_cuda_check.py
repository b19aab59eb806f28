"""GPU check of ``fundusrt.runtime.engines.cuda`` alone (no TensorRT needed): pinned and device
buffers, a host -> device -> host round trip on a stream, copy bandwidth, error reporting and release.

    python benchmarks/gpu_cuda_check.py [--shape 8 3 512 512] [--repeats 20]

Prints a Markdown table. Exit 0: all checks pass; 1: a check failed; 2: no cuda-python or no GPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from fundusrt.runtime.engines import cuda
from fundusrt.runtime.engines.base import EngineError
from fundusrt.train.tables import markdown_table


def timed_copy(copy, stream: cuda.Stream, repeats: int) -> float:
    """Median seconds of one copy, each waited for (the copies are what is timed, not the launches)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        copy()
        stream.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", type=int, nargs="+", default=[8, 3, 512, 512])
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    try:
        if cuda.gpu_count() == 0:
            raise EngineError("no CUDA GPU is visible")
    except EngineError as e:
        print(f"gpu_cuda_check: skipped: {e}")
        return 2

    shape = tuple(args.shape)
    major, minor = cuda.compute_capability()
    rows = [("device", cuda.device_name()), ("compute capability", f"{major}.{minor}")]
    failures = []
    with cuda.Stream() as stream, cuda.PinnedBuffer(shape) as src, cuda.PinnedBuffer(shape) as dst:
        device = cuda.DeviceBuffer(src.nbytes)
        src.array[...] = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
        dst.array[...] = 0
        h2d = timed_copy(lambda: device.copy_from_host_async(src, stream), stream, args.repeats)
        d2h = timed_copy(lambda: device.copy_to_host_async(dst, stream), stream, args.repeats)
        round_trip = np.array_equal(src.array, dst.array)
        # A partial copy (the batch's rows only, as the TensorRT engine does) must leave the rest alone.
        dst.array[...] = 0
        rows_bytes = src.array[:1].nbytes
        device.copy_to_host_async(dst, stream, rows_bytes)
        stream.synchronize()
        partial = np.array_equal(dst.array[:1], src.array[:1]) and not dst.array[1:].any()
        device.close()
        device.close()  # idempotent
        rows += [
            ("buffer", f"{shape} float32, {src.nbytes / 2**20:.1f} MiB"),
            ("host -> device", f"{src.nbytes / h2d / 1e9:.1f} GB/s"),
            ("device -> host", f"{src.nbytes / d2h / 1e9:.1f} GB/s"),
            ("round trip equal", round_trip),
            ("partial copy exact", partial),
        ]
        failures += [name for name, ok in (("round trip", round_trip), ("partial copy", partial)) if not ok]
    released = src.array is None and dst.array is None
    src.close()  # already closed by ``with``: must be a no-op
    try:
        cuda.DeviceBuffer(1 << 50)  # 1 PiB: must fail as one EngineError line naming the CUDA error
        error_line = "no error raised"
    except EngineError as e:
        error_line = str(e)
    errors_named = "cudaError" in error_line and "\n" not in error_line
    rows += [("released (views dropped)", released), ("oversized cudaMalloc", f"`{error_line}`")]
    failures += [name for name, ok in (("release", released), ("error naming", errors_named)) if not ok]

    print(markdown_table(["check", "result"], rows))
    if failures:
        print(f"\nFAILED: {', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
