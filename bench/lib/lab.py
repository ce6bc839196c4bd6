# SPDX-License-Identifier: GPL-2.0
"""Boot the lab for a benchmark and give back its run directory.

Benchmarks boot the benchmark kernel (build/kbuild-bench: configs/lab.config
and configs/bench.config, the debug checkers off) with the test modules
built for it; BENCH_KERNEL=lab boots the lab's debug kernel instead."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get('LAB_BUILD', TOP / 'build'))
KERNELS = {
    'bench': (BUILD / 'kbuild-bench', BUILD / 'tests' / 'modules-bench',
              'configs/lab.config + configs/bench.config (no KASAN, lockdep, kmemleak, '
              'DMA-API debug, fault injection)'),
    'lab': (BUILD / 'kbuild', BUILD / 'tests' / 'modules',
            'configs/lab.config + configs/debug.config (KASAN, lockdep, kmemleak, '
            'DMA-API debug, fault injection)'),
}


def config_of(release):
    """What configuration built the kernel of release @release (uname -r)."""
    for which, suffix in (('bench', '-p2p-bench'), ('lab', '-p2p-lab')):
        if release.endswith(suffix):
            return f'{release}, {KERNELS[which][2]}'
    return f'{release} (not one of the project\'s kernels: its own configuration)'


def kernel():
    """(kernel build directory, test modules directory, configuration)."""
    which = os.environ.get('BENCH_KERNEL', 'bench')
    if which not in KERNELS:
        sys.exit(f'BENCH_KERNEL must be one of {", ".join(KERNELS)}')
    return KERNELS[which]


def lab_run(cmd, cpu='amd', env=None, timeout=3000, what='the benchmark'):
    """Run @cmd (a list, paths relative to the top directory) in a lab boot;
    the run directory (output, console.log, files the guest wrote to
    $LAB_RUN). Exits with the guest's output when the command failed."""
    kbuild, modules, config = kernel()
    env = dict(env or {}, LAB_KERNEL=str(kbuild / 'arch/x86/boot/bzImage'),
               LAB_MODULES=str(modules))
    print(f'== {what}: booting the lab ({cpu}, kernel {kbuild.name}: {config})',
          file=sys.stderr, flush=True)
    # This boot's own directory: build/lab/last may be another boot's.
    with tempfile.NamedTemporaryFile('r') as where:
        rc = subprocess.run([str(TOP / 'lab/run'), '--quiet', '--cpu', cpu, '--timeout',
                             str(timeout), '--run-dir', where.name, '--'] + cmd,
                            env=dict(os.environ, **(env or {}))).returncode
        name = where.read().strip()
    if not name:
        sys.exit(f'{what}: the lab did not start (status {rc})')
    run_dir = Path(name)
    if rc:
        out = run_dir / 'output'
        sys.stderr.write(out.read_text()[-4000:] if out.exists() else '')
        sys.exit(f'{what}: the guest part failed (status {rc}); console: '
                 f'{run_dir / "console.log"}')
    return run_dir


def parse_lines(text):
    """'name key=value ...' lines -> [(name, {key: value})] (numbers as float)."""
    out = []
    for line in text.splitlines():
        f = line.split()
        if not f or '=' in f[0]:
            continue
        kv = {}
        for item in f[1:]:
            if '=' in item:
                k, v = item.split('=', 1)
                try:
                    kv[k] = float(v)
                except ValueError:
                    kv[k] = v
        if kv:
            out.append((f[0], kv))
    return out
