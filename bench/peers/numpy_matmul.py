"""numpy peer of the bench's MatMul row: float32 [M,K] x [K,N], the same shape as ours.

Usage: numpy_matmul.py M K N STEPS [--serve]
Prints one JSON line per round (peer.py): value = GFLOP/s (2 M K N / median seconds / 1e9), every
timed repeat's seconds, and the BLAS numpy actually runs on (read from /proc/self/maps after the
first matmul). Debian's python3-numpy links libblas.so.3: OpenBLAS with libopenblas0-pthread
installed, the reference BLAS without it.
"""
import sys

import numpy as np

from peer import run, timed_repeats

M, K, N, STEPS = map(int, sys.argv[1:5])
a = np.random.rand(M, K).astype(np.float32)
w = np.random.rand(K, N).astype(np.float32)
for _ in range(5):
    a @ w
run(2 * M * K * N / 1e9, 'GFLOP/s', lambda: timed_repeats(lambda: a @ w, STEPS), {'library': f'numpy {np.__version__}'})
