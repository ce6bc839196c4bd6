# SPDX-License-Identifier: GPL-2.0
"""Boot the lab for a benchmark and give back its run directory."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]


def lab_run(cmd, cpu='amd', env=None, timeout=3000, what='the benchmark'):
    """Run @cmd (a list, paths relative to the top directory) in a lab boot;
    the run directory (output, console.log, files the guest wrote to
    $LAB_RUN). Exits with the guest's output when the command failed."""
    print(f'== {what}: booting the lab ({cpu})', file=sys.stderr, flush=True)
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
