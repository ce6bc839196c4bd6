#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Guest half of bench/datapath, and the same measure on a machine with
an RDMA NIC: perftest's ib_write_bw and ib_read_bw in event mode (-e: no
process polls a completion queue, so the CPUs run only the work) with the
server's buffer, where the NIC writes and whence it reads, from each
source: plain host memory, a vfio-pci BAR dma-buf, the system heap,
udmabuf; and the copy a bounce adds (bar-copy: host memory into the BAR,
or out of it for reads).

Every measure runs twice, with N1 and N2 messages (or copies), each
between two marks of the counting TCG plugin (bench/plugin; no-ops
without it): the difference over N2 - N1 is the cost per message without
the set-up. Repeats are interleaved (each round runs every source, in an
order rotated by round).

  datapath.py [--device DEV] [--vfio BDF] [--bar N] [--sizes S,...]
              [--tests T,...] [--sources S,...] [--repeat R] [--addr A]
              [--gid G] [--port P] [--out FILE]

Defaults are the lab's: rxe0 (created), ivshmem bound to vfio-pci, BAR 2,
the interface's IPv4 address and GID index, $LAB_RUN/datapath.json. On
hardware: --device mlx5_0 --vfio <BDF of a device bound to vfio-pci> --bar
<a BAR of memory the NIC may write> --addr <the NIC's IPv4 address> --gid
<its RoCE v2 GID index>; build the project's perftest first (make
userspace).
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
from lab_rdma import (BIN, BUILD, bind_vfio, ensure_rxe, figure,  # noqa: E402
                      ipv4_addr, ipv4_gid_index, lab_pci_find, listening)

TOOLS = BUILD / 'bench' / 'tools'
# Messages per run (N1, N2) by size: N2 - N1 carries the per-message cost.
ITERS = {4096: (200, 600), 65536: (40, 120), 1 << 20: (6, 18)}


def mark():
    subprocess.run([str(TOOLS / 'cpucount-mark')], check=True)


def perftest(a, test, server_args, client_args, timeout=900):
    """Server, then client of perftest's @test on @a.device; (server rc,
    server output, client rc, client output), rc None for a client not
    started or timed out."""
    a.port += 1
    common = [str(BIN / test), '-d', a.device, '-x', a.gid, '-p', str(a.port), '-F']
    srv = subprocess.Popen(common + server_args, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    while not listening(a.port) and srv.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    if srv.poll() is not None or not listening(a.port):
        srv.kill()
        return srv.returncode, srv.communicate()[0], None, 'server not listening'
    try:
        cli = subprocess.run(common + client_args + [a.addr], capture_output=True,
                             text=True, timeout=timeout)
        crc, cout = cli.returncode, cli.stdout + cli.stderr
    except subprocess.TimeoutExpired:
        crc, cout = None, f'client timed out after {timeout} s'
    try:
        sout = srv.communicate(timeout=60)[0]
    except subprocess.TimeoutExpired:
        srv.kill()
        sout = srv.communicate()[0] + '\nserver killed after the client ended'
    return srv.returncode, sout, crc, cout


def iters(size):
    if size in ITERS:
        return ITERS[size]
    n = max(4, (4096 * 200) // size)
    return n, 3 * n


def run_perftest(a, test, size, src, n, marks=True):
    opt = []
    if src == 'vfio':
        opt = [f'--use_dmabuf=vfio:{a.vfio},bar={a.bar}']
    elif src == 'heap':
        opt = ['--use_dmabuf=heap:system']
    elif src == 'udmabuf':
        opt = ['--use_dmabuf=udmabuf']
    # Event mode where perftest has it (not for WRITE): no process polls.
    args = (['-e'] if test != 'ib_write_bw' else []) + ['-s', str(size), '-n', str(n)]
    if marks:
        mark()
    srv, sout, cli, cout = perftest(a, test, args + opt, args)
    if marks:
        mark()
    fig = figure(cout or '')
    common = f'{test} -d {a.device} -x {a.gid} -F'
    r = {'kind': 'perftest', 'test': test, 'size': size, 'source': src, 'n': n,
         'server': f'{common} {" ".join(args + opt)}',
         'client': f'{common} {" ".join(args)} {a.addr}',
         'ok': srv == 0 and cli == 0 and fig is not None}
    if r['ok']:
        r['bw_mib_s'] = float(fig.split()[3])
    else:
        r['error'] = ((sout or '') + '\n' + (cout or ''))[-2000:]
    return r


def run_copy(a, test, size, n):
    cmd = [str(TOOLS / 'bar-copy'), '-n', str(n)]
    if test == 'ib_read_bw':
        cmd.append('-r')
    cmd += [a.vfio, str(a.bar), '0', str(size)]
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
    ap.add_argument('--tests', default='ib_write_bw,ib_read_bw')
    ap.add_argument('--sources', default='plain,vfio,heap,udmabuf')
    ap.add_argument('--repeat', type=int, default=3)
    ap.add_argument('--addr')
    ap.add_argument('--gid')
    ap.add_argument('--out')
    ap.add_argument('--port', type=int, default=19000)
    a = ap.parse_args()
    if a.device == 'rxe0':
        ensure_rxe()
    a.gid = a.gid or ipv4_gid_index()
    a.addr = a.addr or ipv4_addr()
    if not a.vfio:
        a.vfio = lab_pci_find('ivshmem')
        bind_vfio(a.vfio)
    out = Path(a.out or Path(os.environ['LAB_RUN'], 'datapath.json'))
    sizes = [int(s, 0) for s in a.sizes.split(',')]
    sources = a.sources.split(',')
    # Warm-up, not counted: the first run of a boot pays for page cache,
    # first faults and rxe's first packets.
    for test in a.tests.split(','):
        for src in sources:
            run_perftest(a, test, sizes[0], src, iters(sizes[0])[0], marks=False)
    runs = []
    for rep in range(a.repeat):
        order = sources[rep % len(sources):] + sources[:rep % len(sources)]
        for test in a.tests.split(','):
            for size in sizes:
                for src in order + ['copy']:
                    for n in iters(size):
                        r = (run_copy(a, test, size, n) if src == 'copy' else
                             run_perftest(a, test, size, src, n))
                        r['rep'] = rep
                        print(json.dumps({k: v for k, v in r.items() if k != 'error'}),
                              flush=True)
                        runs.append(r)
    out.write_text(json.dumps({
        'runs': runs, 'argv': ' '.join(sys.argv[1:]), 'device': a.device,
        'vfio': a.vfio, 'bar': a.bar,
        'kernel': os.uname().release, 'cpu': os.environ.get('LAB_CPU', '?'),
        'marks_per_run': 2}, indent=1))
    failed = [r for r in runs if not r['ok']]
    for r in failed:
        print(f'FAILED: {r}', file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
