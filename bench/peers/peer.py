"""Shared by the Python peers of `npm run bench` (numpy_matmul.py, torch_gpt2.py, torch_llama.py).

blas_in_use(): which BLAS / LAPACK this process actually runs on, read after the peer's first matmul
from /proc/self/maps (the shared objects mapped into the process, resolved with os.path.realpath),
not from build-time configuration (numpy.show_config and torch's BLAS_INFO name what the package was
built against; Debian's numpy and torch link libblas.so.3, which update-alternatives points at the
reference BLAS or at OpenBLAS). kind is one of
  openblas | mkl | blis | atlas | flexiblas | accelerate   an optimised BLAS
  reference   Debian's netlib reference BLAS (/usr/lib/<triplet>/blas/libblas.so.3): a peer on it is
              many times slower than on OpenBLAS, so the bench withholds the ratio
  unknown     a libblas we cannot name; builtin: none mapped (e.g. MKL linked into a torch wheel,
              named by torch.__config__.show())

run(work, unit, one_round, setup_info): the command line shared by the peers.
  by hand:       one round of STEPS timed repeats, then one JSON line
  with --serve:  after warm-up prints {"ready": true, ...}; then one round per line read on stdin, one
                 JSON line each, until EOF (the bench alternates our rounds with the peer's)
  A round's JSON: value (work / median seconds), unit, times_s (every timed repeat), median_s, blas, ...
"""
import ctypes
import json
import os
import sys
import time

_KINDS = (
    ('openblas', 'OpenBLAS'), ('mkl', 'MKL'), ('blis', 'BLIS'), ('atlas', 'ATLAS'), ('flexiblas', 'FlexiBLAS'),
    ('accelerate', 'Accelerate'),
)


def _mapped_libraries():
    paths = []
    try:
        with open('/proc/self/maps') as f:
            for line in f:
                parts = line.split(None, 5)
                if len(parts) == 6 and parts[5].startswith('/'):
                    p = parts[5].strip()
                    if p not in paths:
                        paths.append(p)
    except OSError:
        pass
    return paths


def _is_blas_like(path):
    base = os.path.basename(path).lower()
    if 'mkldnn' in base or 'dnnl' in base:  # oneDNN kernels, not a BLAS
        return False
    return any(k in base for k in ('blas', 'lapack', 'mkl', 'blis', 'atlas'))


def _classify(real):
    low = real.lower()
    for key, name in _KINDS:
        if key in low:
            return key, name
    base = os.path.basename(low)
    parent = os.path.basename(os.path.dirname(low))
    if (base.startswith('libblas.so') and parent == 'blas') or (base.startswith('liblapack.so') and parent == 'lapack'):
        return 'reference', 'reference BLAS (netlib)'
    return 'unknown', 'unknown BLAS'


def _openblas_details(libs):
    """Version string and thread count from OpenBLAS itself, when one of the mapped objects exports them."""
    for p in libs:
        try:
            lib = ctypes.CDLL(p)
            get_config = lib.openblas_get_config
        except (OSError, AttributeError):
            continue
        get_config.restype = ctypes.c_char_p
        out = {'config': get_config().decode(errors='replace')}
        try:
            out['threads'] = int(lib.openblas_get_num_threads())
        except AttributeError:
            pass
        return out
    return {}


def blas_in_use(builtin_hint=None):
    """The BLAS this process runs on. builtin_hint: a name to report when no BLAS library is mapped."""
    libs = [os.path.realpath(p) for p in _mapped_libraries() if _is_blas_like(p)]
    libs = list(dict.fromkeys(libs))
    found = [(p,) + _classify(p) for p in libs]
    # The BLAS proper decides: libblas / libopenblas / mkl / blis before LAPACK.
    blas = [f for f in found if 'lapack' not in os.path.basename(f[0]).lower()] or found
    optimised = [f for f in blas if f[1] not in ('reference', 'unknown')]
    pick = (optimised or [f for f in blas if f[1] == 'reference'] or blas or [None])[0]
    if pick is None:
        info = {'kind': 'builtin', 'name': builtin_hint or 'no BLAS library mapped', 'path': None}
    else:
        info = {'kind': pick[1], 'name': pick[2], 'path': pick[0]}
    info['libraries'] = libs
    if info['kind'] == 'openblas':
        info.update(_openblas_details(libs))
        words = info.get('config', '').split()
        if len(words) >= 2 and words[0] == 'OpenBLAS':
            info['name'] = f'OpenBLAS {words[1]}'
    return info


def torch_setup(torch):
    """What the torch peers print with every line: version, threads, and the BLAS named by the build
    (reported only if no BLAS library is mapped: a wheel with MKL linked in)."""
    words = torch.__config__.show().replace(',', ' ').split()
    blas_info = next((w for w in words if w.startswith('BLAS_INFO=')), 'BLAS_INFO unknown')
    return {'library': f'torch {torch.__version__}', 'threads': torch.get_num_threads(), 'builtin_blas': f'linked into torch: {blas_info}'}


def _stats(times, work, unit):
    s = sorted(times)
    q = lambda f: s[min(len(s) - 1, int(f * len(s)))]
    med = s[len(s) // 2]
    return {'value': work / med, 'unit': unit, 'median_s': med, 'min_s': s[0], 'max_s': s[-1], 'p10_s': q(0.1), 'p90_s': q(0.9),
            'times_s': times}


def run(work, unit, one_round, setup_info):
    """one_round() -> list of seconds per timed repeat. setup_info: dict printed with every line (library, threads)."""
    serve = '--serve' in sys.argv[1:]
    blas = None

    def emit(obj):
        sys.stdout.write(json.dumps(obj) + '\n')
        sys.stdout.flush()

    if serve:
        blas = blas_in_use(setup_info.get('builtin_blas'))
        emit({'ready': True, 'blas': blas, **setup_info})
        while sys.stdin.readline():
            emit({**_stats(one_round(), work, unit), 'blas': blas, **setup_info})
    else:
        times = one_round()
        emit({**_stats(times, work, unit), 'blas': blas_in_use(setup_info.get('builtin_blas')), **setup_info})


def timed_repeats(fn, steps):
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times
