#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Guest half of bench/datapath: perftest over rxe0 into each kind of
buffer, and the cost of the bounce copy, in one boot.

For ib_write_bw and ib_write_lat at each size, the server (the side the
data is written into) registers its buffer from one source: plain host
memory (no --use_dmabuf), vfio:<ivshmem> (BAR 2 exported by vfio-pci),
heap:system or udmabuf, and plain host memory once more (the noise of
one run); the client always sends from plain host memory.
Then bar-copy times a CPU copy of each size into BAR 2 through the VFIO
mmap: the second half of the bounce a user has without dma-buf MRs.

Writes JSON to $LAB_RUN/datapath.json for the host half.
"""
import json
import os
import sys
import subprocess
from pathlib import Path

sys.path.insert(0, os.path.join(os.environ['LAB_TOP'], 'tests/selftests/lib'))
from lab_rdma import (BUILD, bind_vfio, ensure_rxe, figure,  # noqa: E402
                      ipv4_addr, ipv4_gid_index, lab_pci_find, perftest)

SIZES = [64, 4096, 65536, 1 << 20]
# Iterations per size: enough for a steady figure under TCG, where rxe
# moves a few MiB/s.
ITERS = {
    'ib_write_bw': {64: 2000, 4096: 1000, 65536: 200, 1 << 20: 20},
    'ib_write_lat': {64: 500, 4096: 300, 65536: 50, 1 << 20: 10},
}


def main():
    ensure_rxe()
    gid, addr = ipv4_gid_index(), ipv4_addr()
    ivshmem = lab_pci_find('ivshmem')
    bind_vfio(ivshmem)
    sources = {
        'plain': [],
        'vfio': [f'--use_dmabuf=vfio:{ivshmem}'],
        'heap': ['--use_dmabuf=heap:system'],
        'udmabuf': ['--use_dmabuf=udmabuf'],
        'plain_again': [],	# the noise: plain against plain
    }
    results = []
    for test, iters in ITERS.items():
        for size in SIZES:
            for src, opt in sources.items():
                args = ['-s', str(size), '-n', str(iters[size])]
                srv, sout, cli, cout = perftest(test, args + opt, args, addr, gid,
                                                timeout=600)
                fig = figure(cout)
                ok = srv == 0 and cli == 0 and fig is not None
                common = f'{test} -d rxe0 -x {gid} -F {" ".join(args)}'
                r = {'test': test, 'size': size, 'source': src, 'iters': iters[size],
                     'server': f'{common} {" ".join(opt)}'.strip(),
                     'client': f'{common} {addr}', 'ok': ok}
                if ok:
                    f = [float(x) for x in fig.split()]
                    if test.endswith('_bw'):
                        r['bw_mib_s'] = f[3]	# BW average[MiB/sec]
                    else:
                        r['lat_typical_us'] = f[4]
                        r['lat_avg_us'] = f[5]
                else:
                    r['error'] = (sout + '\n' + cout)[-2000:]
                print(json.dumps(r), flush=True)
                results.append(r)
    copy = subprocess.run([str(BUILD / 'bench/tools/bar-copy'), ivshmem, '2', '0x400000']
                          + [str(s) for s in SIZES], capture_output=True, text=True)
    copies = {}
    for line in copy.stdout.splitlines():
        size, n, usec = line.split()
        copies[int(size)] = {'copies': int(n), 'usec': float(usec)}
    print(copy.stdout + copy.stderr, flush=True)
    out = {'perftest': results, 'bar_copy': copies,
           'bar_copy_command': f'bar-copy {ivshmem} 2 0x400000 '
                               + ' '.join(str(s) for s in SIZES),
           'kernel': os.uname().release, 'cpu': os.environ.get('LAB_CPU', '?')}
    Path(os.environ['LAB_RUN'], 'datapath.json').write_text(json.dumps(out, indent=1))
    return 0 if copy.returncode == 0 and all(r['ok'] for r in results) else 1


if __name__ == '__main__':
    sys.exit(main())
