#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Guest half of bench/datapath, and the same measure on a machine with
an RDMA NIC: perftest's ib_write_bw and ib_read_bw (the latter in event
mode, -e: no process polls a completion queue; perftest refuses -e for
WRITE, whose client busy-polls) with the server's buffer, where the NIC
writes and whence it reads, from each source: plain host memory, a
vfio-pci BAR dma-buf, the system heap, udmabuf; the bounce a user has
without dma-buf MRs, measured (the plain run, then a CPU copy of every
message through the VFIO mmap of the BAR, bar-copy: into it, as after
WRITEs, or out of it, as before READs; in the counted window the order
does not matter); and that copy alone.

Every measure runs twice, with N1 and N2 messages (or copies), each
between two marks of the counting TCG plugin (bench/plugin; no-ops
without it), taken once the server listens and after a pause, so that
the server's start-up and what the previous run left behind stay
outside; the client's set-up is inside, the same for N1 and N2: the
difference over N2 - N1 is the cost per message. The queue depth and the
completion moderation are fixed (-t, --cq-mod), the same for N1 and N2.
Repeats are interleaved (each round runs every source, in an order
rotated by round). Results are written after every run.

  datapath.py [--device DEV] [--vfio BDF] [--bar N] [--sizes S,...]
              [--iters N1,N2] [--tests T,...] [--sources S,...]
              [--repeat R] [--addr A] [--gid G] [--out FILE]

Defaults are the lab's: rxe0 (created), ivshmem bound to vfio-pci, BAR 2,
the interface's IPv4 address and GID index, $LAB_RUN/datapath.json
(./datapath.json outside the lab). On hardware (bench/datapath --device
runs this): --device mlx5_0 --vfio <BDF of a device bound to vfio-pci>
--bar <a prefetchable memory BAR the NIC may write> --addr <the NIC's IPv4
address> --gid <its RoCE v2 GID index>; build the project's perftest and
bench tools first.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(TOP / 'tests/selftests/lib'))
from lab_rdma import (BUILD, bind_vfio, ensure_rxe, figure,  # noqa: E402
                      ipv4_addr, ipv4_gid_index, lab_pci_find, perftest)

TOOLS = BUILD / 'bench' / 'tools'
# Messages per run (N1, N2) by size under rxe in the lab: N2 - N1 carries
# the per-message cost. On a NIC, --iters (or 1 GiB and 4 GiB of payload).
ITERS = {4096: (200, 600), 65536: (40, 120), 1 << 20: (6, 18)}
# Send queue depth and completion moderation: at most the smallest N1.
DEPTH = 4
# Before the first mark: deferred work of the previous run (RCU, kworkers).
SETTLE = 0.5


MARKING = {'on': True}


def mark():
    if MARKING['on']:
        subprocess.run([str(TOOLS / 'cpucount-mark')], check=True)


def iters(a, size):
    if a.iters:
        return a.iters
    if a.device == 'rxe0':
        return ITERS.get(size, (max(DEPTH, (4096 * 200) // size),
                                3 * max(DEPTH, (4096 * 200) // size)))
    return max(DEPTH, (1 << 30) // size), max(DEPTH, (4 << 30) // size)


def copy_cmd(a, test, size, n):
    """bar-copy of @n messages of @size: into the BAR after WRITEs, out of
    it before READs (the bounce's half that the CPU does)."""
    return ([str(TOOLS / 'bar-copy'), '-n', str(n)] + (['-r'] if test == 'ib_read_bw' else [])
            + [a.vfio, str(a.bar), '0', str(size)])


def run_perftest(a, test, size, src, n):
    opt, after = [], None
    if src == 'bounce':
        after = copy_cmd(a, test, size, n)
    elif src == 'vfio':
        opt = [f'--use_dmabuf=vfio:{a.vfio},bar={a.bar}']
    elif src == 'heap':
        opt = ['--use_dmabuf=heap:system']
    elif src == 'udmabuf':
        opt = ['--use_dmabuf=udmabuf']
    # Event mode where perftest has it (not for WRITE): no process polls.
    args = ((['-e'] if test != 'ib_write_bw' else [])
            + ['-s', str(size), '-n', str(n), '-t', str(DEPTH), '--cq-mod', str(DEPTH)])
    state = {'marks': 0, 'post': None}

    def listened():
        # Past the set-up, and what the previous run left to the kernel.
        time.sleep(SETTLE)
        mark()
        state['marks'] += 1

    def ended():
        if after:
            state['post'] = subprocess.run(after, capture_output=True, text=True)
        mark()
        state['marks'] += 1

    srv, sout, cli, cout = perftest(test, args + opt, args, a.addr, a.gid, timeout=900,
                                    dev=a.device, listened=listened, ended=ended)
    # Two marks a run, whatever failed (the host pairs them in order).
    for _ in range(2 - state['marks']):
        mark()
    post = state['post']
    fig = figure(cout or '')
    common = f'{test} -d {a.device} -x {a.gid} -F -u 17'
    r = {'kind': 'perftest', 'test': test, 'size': size, 'source': src, 'n': n,
         'server': f'{common} {" ".join(args + opt)}',
         'client': f'{common} {" ".join(args)} {a.addr}',
         'ok': srv == 0 and cli == 0 and fig is not None and (not post or not post.returncode)}
    if post:
        r['after'] = ' '.join(['bar-copy'] + after[1:])
    if r['ok']:
        r['bw_mib_s'] = float(fig.split()[3])
        if post:
            r['usec'] = float(post.stdout.split()[2])
    else:
        r['error'] = ((sout or '') + '\n' + (cout or '') + (post.stderr if post else ''))[-2000:]
    return r


def run_copy(a, test, size, n):
    cmd = copy_cmd(a, test, size, n)
    time.sleep(SETTLE)
    mark()
    p = subprocess.run(cmd, capture_output=True, text=True)
    mark()
    r = {'kind': 'copy', 'test': test, 'size': size, 'source': 'copy', 'n': n,
         'command': ' '.join(['bar-copy'] + cmd[1:]), 'ok': p.returncode == 0}
    if r['ok']:
        r['usec'] = float(p.stdout.split()[2])
    else:
        r['error'] = p.stderr[-2000:]
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--device', default='rxe0')
    ap.add_argument('--vfio')
    ap.add_argument('--bar', type=int, default=2)
    ap.add_argument('--sizes', default='4096,65536,1048576')
    ap.add_argument('--iters', type=lambda v: tuple(int(x) for x in v.split(',')),
                    help='N1,N2 messages per run (default: by size and device)')
    ap.add_argument('--tests', default='ib_write_bw,ib_read_bw')
    ap.add_argument('--sources', default='plain,vfio,heap,udmabuf,bounce')
    ap.add_argument('--repeat', type=int, default=3)
    ap.add_argument('--addr')
    ap.add_argument('--gid')
    ap.add_argument('--out')
    a = ap.parse_args()
    if a.device == 'rxe0':
        ensure_rxe()
    a.gid = a.gid or ipv4_gid_index()
    a.addr = a.addr or ipv4_addr()
    if not a.vfio:
        a.vfio = lab_pci_find('ivshmem')
        bind_vfio(a.vfio)
    out = Path(a.out or Path(os.environ.get('LAB_RUN', '.'), 'datapath.json'))
    sizes = [int(s, 0) for s in a.sizes.split(',')]
    sources = a.sources.split(',')
    # Warm-up, not counted: the first run of a boot pays for page cache,
    # first faults and rxe's first packets.
    MARKING['on'] = False
    for test in a.tests.split(','):
        for src in sources:
            run_perftest(a, test, sizes[0], src, iters(a, sizes[0])[0])
    MARKING['on'] = True
    data = {'runs': [], 'argv': ' '.join(sys.argv[1:]), 'device': a.device,
            'vfio': a.vfio, 'bar': a.bar, 'kernel': os.uname().release,
            'cpu': os.environ.get('LAB_CPU', '?'), 'date': time.strftime('%Y-%m-%d'),
            'marks_per_run': 2}
    runs = data['runs']
    for rep in range(a.repeat):
        order = sources[rep % len(sources):] + sources[:rep % len(sources)]
        for test in a.tests.split(','):
            for size in sizes:
                for src in order + ['copy']:
                    for n in iters(a, size):
                        r = (run_copy(a, test, size, n) if src == 'copy' else
                             run_perftest(a, test, size, src, n))
                        r['rep'] = rep
                        print(json.dumps({k: v for k, v in r.items() if k != 'error'}),
                              flush=True)
                        runs.append(r)
                        out.write_text(json.dumps(data, indent=1))
    failed = [r for r in runs if not r['ok']]
    for r in failed:
        print(f'FAILED: {r}', file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
