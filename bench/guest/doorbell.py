#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Guest half of bench/doorbell: the same NVMe client, submitting by RDMA
alone (offload) or through the target's CPU (via-target), in one boot.

For each mode, nvme-offload-target on the lab's NVMe and one
nvme-offload-client running COMMANDS 4 KiB WRITEs (no read-back), started
with -w so that the measurement covers its I/O only: between its "go" and
its summary, the task clock (PERF_COUNT_SW_TASK_CLOCK, ns, user and kernel)
of the target process and of the client process, and the busy time of
the whole guest (/proc/stat: every CPU's non-idle ticks) whose rest is
rxe's work (kernel threads and softirqs: the NIC's, on hardware) and QEMU's
NVMe. Under -icount shift=0 (LAB_ICOUNT=0) the guest's clock advances one
nanosecond per instruction of either vCPU: the busy total counts the
machine's instructions, a task clock at most twice the task's own.

Prints one "result mode=... key=value ..." line per mode and writes them
to $LAB_RUN/doorbell.json.
"""
import ctypes
import json
import os
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.environ['LAB_TOP'], 'tests/selftests/nvme'))
sys.path.insert(0, os.path.join(os.environ['LAB_TOP'], 'tests/selftests/lib'))
from doorbell_offload import Lab, Target, client  # noqa: E402

COMMANDS = int(os.environ.get('LAB_DOORBELL_COMMANDS', '400'))
_libc = ctypes.CDLL(None, use_errno=True)
SYS_PERF_EVENT_OPEN = 298	# x86-64
TICK_NS = 1e9 / os.sysconf('SC_CLK_TCK')


def task_clock(pid):
    """A counting PERF_COUNT_SW_TASK_CLOCK event on @pid (any CPU); its fd.
    perf_event_attr, first version (64 bytes): type PERF_TYPE_SOFTWARE,
    config PERF_COUNT_SW_TASK_CLOCK, nothing excluded."""
    attr = struct.pack('<IIQ', 1, 64, 1) + bytes(48)
    fd = _libc.syscall(SYS_PERF_EVENT_OPEN, attr, pid, -1, -1, 0)
    if fd < 0:
        raise OSError(ctypes.get_errno(), f'perf_event_open(task-clock, pid {pid})')
    return fd


def read_ns(fd):
    return struct.unpack('<Q', os.read(fd, 8))[0]


def busy_ns():
    """Non-idle time of every CPU since boot (user, nice, system, irq,
    softirq, steal), from /proc/stat."""
    f = Path('/proc/stat').read_text().splitlines()[0].split()[1:]
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in f[:8])
    return (user + nice + system + irq + softirq + steal) * TICK_NS


def measure(t, c):
    """Counters around the client's I/O: (before, after, summary)."""
    if not c.expect('waiting for=go'):
        raise RuntimeError('client not connected')
    fds = [task_clock(t.p.pid), task_clock(c.p.pid)]
    try:
        t0 = [read_ns(fd) for fd in fds] + [busy_ns(), time.monotonic()]
        c.send('go')
        summary = c.expect('summary', timeout=1800)
        t1 = [read_ns(fd) for fd in fds] + [busy_ns(), time.monotonic()]
    finally:
        for fd in fds:
            os.close(fd)
    if c.expect('waiting for=end'):
        c.send('end')
    return t0, t1, summary


def run(lab, mode):
    t = Target(lab.bdf, '-m', mode)
    if not t.ready:
        sys.exit(f'target not ready:\n{t.output()}')
    c = client(t, '-n', COMMANDS, '-s', 31, '-l', 0, '-w', stdin=True)
    err, summary = None, None
    try:
        t0, t1, summary = measure(t, c)
    except (OSError, RuntimeError) as e:
        err = str(e)
    finally:
        rc = c.finish()  # the target goes too, whatever happened
        stats = t.stop()
    if err or rc != 0 or not summary or int(summary['completed']) != COMMANDS or not stats:
        sys.exit(f'{mode}: {err or ""} client exit {rc}\n{t.output()}\n{c.output()}')
    target_ns, client_ns, system_ns = (t1[i] - t0[i] for i in range(3))
    return {
        'mode': mode, 'commands': COMMANDS, 'seconds': t1[3] - t0[3],
        'client_seconds': float(summary['seconds']),
        'cmds_per_s': float(summary['cmds_per_s']),
        'target_ns': target_ns, 'client_ns': client_ns, 'system_ns': system_ns,
        'io_submissions': int(stats['io_submissions']),
        'target': ' '.join(t.argv), 'client': ' '.join(c.argv),
    }


def main():
    lab = Lab()
    if not lab.bdf:
        sys.exit('no NVMe in the lab')
    lab.setup()
    out = {'icount': os.environ.get('LAB_ICOUNT', ''), 'kernel': os.uname().release,
           'runs': []}
    try:
        for mode in ('offload', 'via-target'):
            r = run(lab, mode)
            out['runs'].append(r)
            print('result ' + ' '.join(f'{k}={v}' for k, v in r.items()
                                       if k not in ('target', 'client')), flush=True)
    finally:
        lab.restore()
    name = 'doorbell-icount.json' if out['icount'] else 'doorbell.json'
    Path(os.environ['LAB_RUN'], name).write_text(json.dumps(out, indent=1) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
