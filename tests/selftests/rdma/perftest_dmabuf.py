#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""perftest with --use_dmabuf=<source> on rxe0, as KTAP.

Each of ib_write_bw, ib_read_bw, ib_send_bw, ib_write_lat, ib_read_lat and
ib_send_lat runs server and client in the guest over Soft-RoCE:

- once with one side on vfio:<ivshmem> (BAR 2 exported by vfio-pci, the
  device opened through its VFIO cdev, or its group without an IOMMU) and the
  other on the system heap or udmabuf. The side whose buffer is the BAR is
  the one that receives data; the other side sends a --payload_file_path
  pattern. Afterwards the host file behind BAR 2 must hold the pattern
  (ib_write_lat, which allows no payload, must hold the peer's last
  iteration count in the byte the server polls);
- once with heap:system on one side and udmabuf on the other.

Then every refused argument must exit non-zero with its own message.
"""
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

BUILD = Path(__file__).resolve().parents[3]
sys.path.insert(0, os.path.join(os.environ.get('LAB_TOP', BUILD.parent),
                                'tests/selftests/lib'))
from ktap import Ktap  # noqa: E402
from lab_rdma import (BIN, DEV, bind_vfio, ensure_rxe, figure,  # noqa: E402
                      ipv4_addr, ipv4_gid_index, lab_pci_find, perftest, text)

GUARD = 0x5a
BW_SIZE = 65536
LAT_SIZE = 4096
LAT_ITERS = 100		# ib_write_lat's last counter byte: 0x64
PATTERN = [0xc0ffee01, 0x5eed0002, 0xd00dfe03, 0x0badcaf4,
           0x13579bdf, 0x2468ace0, 0xfedcba98, 0x76543210]
PATTERN_BYTES = b''.join(struct.pack('<I', d) for d in PATTERN)


class Host:
    """The host file behind ivshmem BAR 2 (9p, so never the guest's PCI path)."""

    def __init__(self):
        self.path = os.environ['LAB_IVSHMEM']

    def guard(self, length):
        with open(self.path, 'r+b', buffering=0) as f:
            f.write(bytes([GUARD]) * length)

    def read(self, length):
        with open(self.path, 'rb', buffering=0) as f:
            return f.read(length)


def expect_pattern(data, size, off):
    """The payload at @off: perftest's receive half of the buffer is the
    second (the peer's RDMA WRITE target and the receive buffers, at one
    message size in); an RDMA READ lands in the first."""
    want = (PATTERN_BYTES * (size // len(PATTERN_BYTES) + 1))[:size]
    got = data[off:off + size]
    if got == want:
        return None
    bad = next(i for i in range(size) if got[i] != want[i])
    found = data.find(PATTERN_BYTES)
    return (f'host file differs from the payload at byte {off + bad}: '
            f'{got[bad:bad + 16].hex()} != {want[bad:bad + 16].hex()} '
            f'(payload first found at {found})')


def expect_write_lat(data, size):
    """The server zeroes its buffer; the byte it polls (the last of the
    second half) holds the client's last counter, by RDMA WRITE."""
    counter = LAT_ITERS & 0xff
    poll = 2 * size - 1
    if data[poll] != counter or any(data[size:poll]):
        nonzero = [(i, b) for i, b in enumerate(data[:2 * size]) if b][:8]
        head = ', '.join(f'{i}:{b:#x}' for i, b in nonzero)
        return (f'expected zeros and the counter {counter:#x} at byte {poll}; '
                f'non-zero bytes: {head or "none"}')
    return None


def main():
    payload = Path(f'/tmp/perftest_dmabuf.{os.getpid()}.payload')
    try:
        return run(payload)
    finally:
        payload.unlink(missing_ok=True)


def run(payload):
    ensure_rxe()
    ktap = Ktap(sys.stdout)
    ktap.line('TAP version 13')
    gid, addr = ipv4_gid_index(), ipv4_addr()
    ivshmem = lab_pci_find('ivshmem')
    bind_vfio(ivshmem)
    vfio = f'--use_dmabuf=vfio:{ivshmem}'
    # The cdev when the device has one (IOMMU on), else the group (no-IOMMU).
    cdev = list(Path(f'/sys/bus/pci/devices/{ivshmem}/vfio-dev').glob('vfio*'))
    via = 'cdev' if cdev and Path('/dev/vfio/devices', cdev[0].name).exists() else 'group'
    host = Host()
    payload.write_text(','.join(f'0x{d:08x}' for d in PATTERN))
    pay = [f'--payload_file_path={payload}']
    heap, udma = '--use_dmabuf=heap:system', '--use_dmabuf=udmabuf'
    bw = ['-s', str(BW_SIZE), '-n', '200']
    lat = ['-s', str(LAT_SIZE), '-n', str(LAT_ITERS)]

    # name, test, server args, client args, check of the host file
    data_cases = [
        ('ib_write_bw_into_vfio_bar', 'ib_write_bw', bw + [vfio], bw + [heap] + pay,
         lambda d: expect_pattern(d, BW_SIZE, BW_SIZE)),
        ('ib_read_bw_into_vfio_bar', 'ib_read_bw', bw + [udma] + pay, bw + [vfio],
         lambda d: expect_pattern(d, BW_SIZE, 0)),
        ('ib_send_bw_into_vfio_bar', 'ib_send_bw', bw + [vfio], bw + [udma] + pay,
         lambda d: expect_pattern(d, BW_SIZE, BW_SIZE)),
        ('ib_write_lat_into_vfio_bar', 'ib_write_lat', lat + [vfio], lat + [heap],
         lambda d: expect_write_lat(d, LAT_SIZE)),
        ('ib_read_lat_into_vfio_bar', 'ib_read_lat', lat + [heap] + pay, lat + [vfio],
         lambda d: expect_pattern(d, LAT_SIZE, 0)),
        ('ib_send_lat_into_vfio_bar', 'ib_send_lat', lat + [vfio], lat + [udma] + pay,
         lambda d: expect_pattern(d, LAT_SIZE, LAT_SIZE)),
    ]
    sys_cases = [(f'{t}_heap_and_udmabuf', t, a + [heap], a + [udma])
                 for t, a in (('ib_write_bw', bw), ('ib_read_bw', bw),
                              ('ib_send_bw', bw))]
    sys_cases += [(f'{t}_udmabuf_and_heap', t, a + [udma], a + [heap])
                  for t, a in (('ib_write_lat', lat), ('ib_read_lat', lat),
                               ('ib_send_lat', lat))]
    nvme = lab_pci_find('nvme')
    # name, args, the message that must be printed
    bad_args = [
        ('unknown_source', ['--use_dmabuf=gpu:0'], 'unknown source'),
        ('no_such_device', ['--use_dmabuf=vfio:0000:7f:1f.7'], 'no PCI device 0000:7f:1f.7'),
        ('not_bound_to_vfio', [f'--use_dmabuf=vfio:{nvme}'],
         f'{nvme} is not bound to vfio-pci (driver: nvme)'),
        ('bar_not_memory', [f'--use_dmabuf=vfio:{ivshmem},bar=4'],
         f'BAR 4 of {ivshmem} is not a memory BAR'),
        ('bar_out_of_range', [f'--use_dmabuf=vfio:{ivshmem},bar=6'], 'bar must be 0 to 5'),
        ('offset_unaligned', [f'--use_dmabuf=vfio:{ivshmem},offset=0x123'],
         'offset must be a page-aligned number'),
        ('unknown_option', [f'--use_dmabuf=vfio:{ivshmem},size=4096'],
         "unknown option 'size=4096'"),
        ('rdma_dm_on_rxe', ['--use_dmabuf=rdma_dm'],
         f'device memory is not supported by {DEV}'),
        ('ib_dm_dmabuf_on_rxe', [f'--use_ib_dm_dmabuf={DEV}'],
         f'device memory is not supported by {DEV}'),
        ('no_such_rdma_device', ['--use_ib_dm_dmabuf=mlx5_9'], 'no RDMA device mlx5_9'),
        ('rdma_dm_with_a_payload', ['--use_dmabuf=rdma_dm', '--payload_file_path=/dev/null'],
         'the CPU cannot reach device memory'),
        ('two_memory_types', [heap, '--mmap=/dev/zero'], "Can't use multiple memory types"),
    ]
    ktap.line(f'1..{len(data_cases) + len(sys_cases) + len(bad_args) + 1}')

    for name, test, sargs, cargs, check in data_cases:
        host.guard(4 << 20)
        src, sout, crc, cout = perftest(test, sargs, cargs, addr, gid)
        err = None
        if src != 0 or crc != 0:
            err = f'server exit {src}, client exit {crc}'
        else:
            err = check(host.read(4 << 20))
        opened = re.search(r'opened through its VFIO (\w+)', sout + cout)
        if not err and (not opened or opened.group(1) != via):
            err = f'expected the device opened through its VFIO {via}'
        diag = f'{test} (VFIO {via}): {figure(cout) or figure(sout)}'
        if err:
            diag = f'{err}\nserver:\n{sout}\nclient:\n{cout}'
        ktap.result(not err, name, diag=diag)

    for name, test, sargs, cargs in sys_cases:
        src, sout, crc, cout = perftest(test, sargs, cargs, addr, gid)
        fig = figure(cout)
        ok = src == 0 and crc == 0 and fig is not None
        diag = f'{test}: {fig}' if ok else \
            f'server exit {src}, client exit {crc}\nserver:\n{sout}\nclient:\n{cout}'
        ktap.result(ok, name, diag=diag)

    for name, args, msg in bad_args:
        # Refused while parsing: no peer is needed, the server never listens.
        try:
            r = subprocess.run([str(BIN / 'ib_write_bw'), '-d', DEV, '-x', gid] + args,
                               capture_output=True, text=True, timeout=60)
            rc, out = r.returncode, r.stdout + r.stderr
        except subprocess.TimeoutExpired as e:
            rc, out = None, f'still running after 60 s (waiting for a client?)\n{text(e.stdout)}'
        ok = rc not in (0, None) and msg in out
        ktap.result(ok, f'refused_{name}',
                    diag=None if ok else f'exit {rc}, expected "{msg}":\n{out}')

    # Too large for the BAR: found when the client creates its buffers.
    bar_size = os.path.getsize(host.path)
    big = ['-s', str(BW_SIZE)]
    src, sout, crc, cout = perftest(
        'ib_write_bw', big + [heap],
        big + [f'--use_dmabuf=vfio:{ivshmem},offset={bar_size - 4096:#x}'], addr, gid)
    ok = crc not in (0, None) and 'the buffers do not fit' in cout
    ktap.result(ok, 'refused_buffers_larger_than_bar',
                diag=None if ok else f'client exit {crc}:\n{cout}')
    return 1 if ktap.failed else 0


if __name__ == '__main__':
    sys.exit(main())
