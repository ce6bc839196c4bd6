#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""perftest with --use_dmabuf=<source> on rxe0, as KTAP.

Server and client run in the guest over Soft-RoCE. The host file behind
ivshmem BAR 2 is the one buffer the test can read back, so every data case
has the BAR on the receiving side (vfio:<ivshmem>,bar=2, the device opened
through its VFIO cdev, or its group without an IOMMU) and the sending side
on the system heap or udmabuf with a --payload_file_path pattern: the
pattern in the host file is what the NIC read from the heap or udmabuf
buffer. Each of ib_write_bw, ib_read_bw, ib_send_bw, ib_read_lat and
ib_send_lat runs once with each of the two as sender (ib_write_lat, which
takes no payload, must leave the client's last iteration count in the byte
the server polls). Both sides name their source in the header, defaults
filled in; the JSON output too.

ib_write_lat with the heap on one side and udmabuf on the other checks the
bytes received in those buffers: each side spins until the peer's counter
is in its own buffer, so the test cannot end unless it got there. Every
side that was given a dma-buf must have registered its buffers with
ibv_reg_dmabuf_mr() and named the source in its header, so that a silent
fallback to host memory fails.

Then the layouts: two QPs sharing one buffer (one dma-buf, each QP's data
in its own slice), two QPs with --mr_per_qp (one dma-buf each, consecutive
BAR slices), and a buffer at offset= (the bytes before it untouched).

Then every refused argument or device must exit with status 1 (the
README's promise; a crash is a signal, never 1) and its own message: while
parsing, before a server listens (including a device another process
holds), and when the buffers are made (an MR the RDMA device refuses with
EOPNOTSUPP, buffers larger than the BAR).
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
MR_CALL = 'Calling ibv_reg_dmabuf_mr('


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


def expect_pattern(data, size, *offs):
    """The payload at each of @offs: perftest's receive half of a buffer
    is its second (the peer's RDMA WRITE target and the receive buffers,
    at one message size per QP in); an RDMA READ lands in the first."""
    want = (PATTERN_BYTES * (size // len(PATTERN_BYTES) + 1))[:size]
    for off in offs:
        got = data[off:off + size]
        if got != want:
            bad = next(i for i in range(size) if got[i] != want[i])
            return (f'host file differs from the payload at byte {off + bad}: '
                    f'{got[bad:bad + 16].hex()} != {want[bad:bad + 16].hex()} '
                    f'(payload first found at {data.find(PATTERN_BYTES)})')
    return None


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


def expect_guard(data, start, end):
    """Bytes [@start, @end) of the BAR still hold the guard."""
    bad = [i for i in range(start, end) if data[i] != GUARD]
    if bad:
        return (f'{len(bad)} guard bytes in [{start:#x}, {end:#x}) changed, '
                f'the first at {bad[0]:#x}')
    return None


def expect_mr_calls(out, n):
    """The side registered @n dma-buf MRs (one per buffer)."""
    got = out.count(MR_CALL)
    return None if got == n else f'{got} dma-buf MRs registered, expected {n}'


def expect_header(out, source):
    """perftest's header names the source, defaults filled in."""
    line = f'dma-buf memory  : {source}'
    return None if line in out else f'the header has no "{line}"'


def expect_dmabuf_mrs(args, out):
    """A side given a dma-buf registered dma-buf MRs, no host memory."""
    if any(a.startswith(('--use_dmabuf', '--use_sys_dmabuf', '--use_ib_dm_dmabuf'))
           for a in args) and MR_CALL not in out:
        return f'no "{MR_CALL}": the buffers are not dma-bufs'
    return None


def group_node(bdf):
    """The /dev node of the device's VFIO group (no-IOMMU or not)."""
    grp = os.path.basename(os.readlink(f'/sys/bus/pci/devices/{bdf}/iommu_group'))
    noiommu = Path(f'/dev/vfio/noiommu-{grp}')
    return noiommu if noiommu.exists() else Path(f'/dev/vfio/{grp}')


def main():
    tmp = f'/tmp/perftest_dmabuf.{os.getpid()}'
    payload, js = Path(f'{tmp}.payload'), Path(f'{tmp}.json')
    try:
        return run(payload, js)
    finally:
        payload.unlink(missing_ok=True)
        js.unlink(missing_ok=True)


def run(payload, js):
    ensure_rxe()
    ktap = Ktap(sys.stdout)
    ktap.line('TAP version 13')
    gid, addr = ipv4_gid_index(), ipv4_addr()
    ivshmem = lab_pci_find('ivshmem')
    bind_vfio(ivshmem)
    vfio = f'--use_dmabuf=vfio:{ivshmem},bar=2'
    bar2 = f'vfio:{ivshmem},bar=2,offset=0'
    # The cdev when the device has one (IOMMU on), else the group (no-IOMMU).
    cdev = list(Path(f'/sys/bus/pci/devices/{ivshmem}/vfio-dev').glob('vfio*'))
    via = 'cdev' if cdev and Path('/dev/vfio/devices', cdev[0].name).exists() else 'group'
    host = Host()
    payload.write_text(','.join(f'0x{d:08x}' for d in PATTERN))
    pay = [f'--payload_file_path={payload}']
    srcs = {'heap': ('--use_dmabuf=heap:system', 'heap:system'),
            'udmabuf': ('--use_dmabuf=udmabuf', 'udmabuf')}
    bw = ['-s', str(BW_SIZE), '-n', '200']
    lat = ['-s', str(LAT_SIZE), '-n', str(LAT_ITERS)]
    S = BW_SIZE

    # name, test, server args, client args, checks of (host file, server
    # output, client output): each None or what is wrong.
    cases = []
    for sname, (sarg, source) in srcs.items():
        def hdr(o_bar, o_src, source=source):
            return (expect_header(o_bar, bar2) or expect_header(o_src, source) or
                    expect_mr_calls(o_bar, 1) or expect_mr_calls(o_src, 1))
        cases += [
            (f'ib_write_bw_{sname}_into_vfio_bar', 'ib_write_bw', bw + [vfio], bw + [sarg] + pay,
             lambda d, so, co, h=hdr: expect_pattern(d, S, S) or h(so, co)),
            (f'ib_read_bw_{sname}_into_vfio_bar', 'ib_read_bw', bw + [sarg] + pay, bw + [vfio],
             lambda d, so, co, h=hdr: expect_pattern(d, S, 0) or h(co, so)),
            (f'ib_send_bw_{sname}_into_vfio_bar', 'ib_send_bw', bw + [vfio], bw + [sarg] + pay,
             lambda d, so, co, h=hdr: expect_pattern(d, S, S) or h(so, co)),
            (f'ib_write_lat_{sname}_into_vfio_bar', 'ib_write_lat', lat + [vfio], lat + [sarg],
             lambda d, so, co, h=hdr: expect_write_lat(d, LAT_SIZE) or h(so, co)),
            (f'ib_read_lat_{sname}_into_vfio_bar', 'ib_read_lat', lat + [sarg] + pay,
             lat + [vfio],
             lambda d, so, co, h=hdr: expect_pattern(d, LAT_SIZE, 0) or h(co, so)),
            (f'ib_send_lat_{sname}_into_vfio_bar', 'ib_send_lat', lat + [vfio],
             lat + [sarg] + pay,
             lambda d, so, co, h=hdr: expect_pattern(d, LAT_SIZE, LAT_SIZE) or h(so, co)),
        ]
    # --use_sys_dmabuf (upstream's spelling) is heap:system; the JSON names it.
    cases += [
        ('ib_write_bw_use_sys_dmabuf_json', 'ib_write_bw', bw + [vfio],
         bw + ['--use_sys_dmabuf', '--out_json', f'--out_json_file={js}'] + pay,
         lambda d, so, co: expect_pattern(d, S, S) or expect_header(co, 'heap:system') or
         (None if '"dmabuf_memory": "heap:system"' in js.read_text() else
          f'{js} has no "dmabuf_memory": "heap:system":\n{js.read_text()}')),
        # Two QPs, one buffer of 4 messages: QP i receives at (2 + i) * S.
        ('ib_write_bw_two_qps_one_dmabuf', 'ib_write_bw', bw + ['-q', '2', vfio],
         bw + ['-q', '2', srcs['heap'][0]] + pay,
         lambda d, so, co: expect_pattern(d, S, 2 * S, 3 * S) or expect_mr_calls(so, 1)),
        # --mr_per_qp: one dma-buf of 2 messages per QP, consecutive in the
        # BAR: QP i receives at 2 * i * S + S.
        ('ib_write_bw_two_qps_mr_per_qp', 'ib_write_bw', bw + ['-q', '2', '--mr_per_qp', vfio],
         bw + ['-q', '2', srcs['udmabuf'][0]] + pay,
         lambda d, so, co: expect_pattern(d, S, S, 3 * S) or expect_mr_calls(so, 2)),
        # offset=: the buffer starts there, the bytes before it untouched.
        ('ib_write_bw_at_offset', 'ib_write_bw', bw + [f'{vfio},offset={4 * S:#x}'],
         bw + [srcs['heap'][0]] + pay,
         lambda d, so, co: expect_guard(d, 0, 4 * S) or expect_pattern(d, S, 5 * S) or
         expect_header(so, f'vfio:{ivshmem},bar=2,offset={4 * S:#x}')),
    ]
    # Both receive: each side spins until the peer's counter is in its
    # buffer. (name, server source, client source)
    sys_cases = [('ib_write_lat_heap_and_udmabuf', 'heap', 'udmabuf'),
                 ('ib_write_lat_udmabuf_and_heap', 'udmabuf', 'heap')]
    nvme = lab_pci_find('nvme')
    # name, arguments (with -d), the message that must be printed
    dev = ['-d', DEV]
    bad_args = [
        ('unknown_source', dev + ['--use_dmabuf=gpu:0'], 'unknown source'),
        ('no_such_device', dev + ['--use_dmabuf=vfio:0000:7f:1f.7,bar=2'],
         'no PCI device 0000:7f:1f.7'),
        ('not_bound_to_vfio', dev + [f'--use_dmabuf=vfio:{nvme},bar=0'],
         f'{nvme} is not bound to a VFIO driver (driver: nvme)'),
        ('no_bar_named', dev + [f'--use_dmabuf=vfio:{ivshmem}'],
         'name the BAR to use with bar=N'),
        ('bar_not_memory', dev + [f'--use_dmabuf=vfio:{ivshmem},bar=4'],
         f'BAR 4 of {ivshmem} is not a memory BAR'),
        ('bar_out_of_range', dev + [f'--use_dmabuf=vfio:{ivshmem},bar=6'], 'bar must be 0 to 5'),
        # 2^32 + 2: not truncated to 2.
        ('bar_past_32_bits', dev + [f'--use_dmabuf=vfio:{ivshmem},bar=4294967298'],
         'bar must be 0 to 5'),
        ('bar_twice', dev + [f'--use_dmabuf=vfio:{ivshmem},bar=2,bar=2'], 'bar= given twice'),
        ('offset_twice', dev + [f'--use_dmabuf=vfio:{ivshmem},bar=2,offset=0,offset=0x1000'],
         'offset= given twice'),
        ('empty_bdf', dev + ['--use_dmabuf=vfio:,bar=2'], 'expected a PCI address'),
        ('offset_past_bar', dev + [f'--use_dmabuf=vfio:{ivshmem},bar=2,offset=0x100000000'],
         "offset 0x100000000 is past BAR 2's end"),
        ('offset_unaligned', dev + [f'--use_dmabuf=vfio:{ivshmem},bar=2,offset=0x123'],
         'offset must be a page-aligned number'),
        ('unknown_option', dev + [f'--use_dmabuf=vfio:{ivshmem},bar=2,size=4096'],
         "unknown option 'size=4096'"),
        ('rdma_dm_on_rxe', dev + ['--use_dmabuf=rdma_dm'],
         f'device memory is not supported by {DEV}'),
        ('ib_dm_dmabuf_on_rxe', dev + [f'--use_ib_dm_dmabuf={DEV}'],
         f'device memory is not supported by {DEV}'),
        # No device in the source: the -d device's memory.
        ('rdma_dm_takes_d', ['-d', 'mlx5_9', '--use_dmabuf=rdma_dm'], 'no RDMA device mlx5_9'),
        ('no_such_rdma_device', dev + ['--use_ib_dm_dmabuf=mlx5_9'], 'no RDMA device mlx5_9'),
        ('rdma_dm_with_a_payload', dev + ['--use_dmabuf=rdma_dm', '--payload_file_path=/dev/null'],
         'the CPU cannot reach device memory'),
        ('rdma_dm_latency_test', dev + ['--use_dmabuf=rdma_dm'],
         'the CPU cannot reach device memory', 'ib_write_lat'),
        ('inline_with_a_dmabuf', dev + ['--use_dmabuf=heap:system', '-I', '64'],
         'no inline messages (-I)'),
        ('two_memory_types', dev + [srcs['heap'][0], '--mmap=/dev/zero'],
         "Can't use multiple memory types"),
        ('two_dmabuf_options', dev + ['--use_sys_dmabuf', f'--use_ib_dm_dmabuf={DEV}'],
         "Can't use multiple memory types"),
        # Held by another process: refused before the server would listen.
        # Holding the group keeps both paths out: the group's open is
        # exclusive, and a cdev cannot bind while its group is open.
        ('device_in_use', dev + [vfio], f'{ivshmem} is in use: another process has it',
         'ib_write_bw', 'hold'),
    ]
    bar_size = os.path.getsize(host.path)
    # name, test, server args, client args, the message of the side that
    # fails once the client has connected, making its buffers
    refused_pairs = [
        ('buffers_larger_than_bar', 'ib_write_bw', bw + [srcs['heap'][0]],
         bw + [f'{vfio},offset={bar_size - 4096:#x}'], 'the buffers do not fit', 'client'),
        # rxe refuses remote atomics on I/O memory: EOPNOTSUPP.
        ('atomics_on_bar_eopnotsupp', 'ib_atomic_bw', ['-n', '200', vfio],
         ['-n', '200', srcs['heap'][0]], f'{DEV} refused the dma-buf MR (EOPNOTSUPP)', 'server'),
    ]
    ktap.line(f'1..{len(cases) + len(sys_cases) + len(bad_args) + len(refused_pairs)}')

    for name, test, sargs, cargs, check in cases:
        host.guard(4 << 20)
        src, sout, crc, cout = perftest(test, sargs, cargs, addr, gid)
        err = None
        if src != 0 or crc != 0:
            err = f'server exit {src}, client exit {crc}'
        else:
            err = check(host.read(4 << 20), sout, cout)
        if not err:
            err = expect_dmabuf_mrs(sargs, sout) or expect_dmabuf_mrs(cargs, cout)
        opened = re.search(r'dma-buf device  : .* opened through its VFIO (\w+)', sout + cout)
        if not err and (not opened or opened.group(1) != via):
            err = f'expected the header to say the device was opened through its VFIO {via}'
        diag = f'{test} (VFIO {via}): {figure(cout) or figure(sout)}'
        if err:
            diag = f'{err}\nserver:\n{sout}\nclient:\n{cout}'
        ktap.result(not err, name, diag=diag)

    for name, ssrc, csrc in sys_cases:
        src, sout, crc, cout = perftest('ib_write_lat', lat + [srcs[ssrc][0]],
                                        lat + [srcs[csrc][0]], addr, gid)
        fig = figure(cout)
        if src != 0 or crc != 0:
            err = f'server exit {src}, client exit {crc}'
        else:
            err = (expect_header(sout, srcs[ssrc][1]) or expect_header(cout, srcs[csrc][1]) or
                   expect_mr_calls(sout, 1) or expect_mr_calls(cout, 1) or
                   (None if fig else 'no result line'))
        diag = f'ib_write_lat: {fig}' if not err else \
            f'{err}\nserver:\n{sout}\nclient:\n{cout}'
        ktap.result(not err, name, diag=diag)

    for name, args, msg, *more in bad_args:
        # Refused while parsing: no peer is needed, the server never listens.
        test = more[0] if more else 'ib_write_bw'
        holder = os.open(group_node(ivshmem), os.O_RDWR) if 'hold' in more else None
        try:
            r = subprocess.run([str(BIN / test), '-x', gid] + args,
                               capture_output=True, text=True, timeout=60)
            rc, out = r.returncode, r.stdout + r.stderr
        except subprocess.TimeoutExpired as e:
            rc, out = None, f'still running after 60 s (waiting for a client?)\n{text(e.stdout)}'
        finally:
            if holder is not None:
                os.close(holder)
        ok = rc == 1 and msg in out
        ktap.result(ok, f'refused_{name}',
                    diag=None if ok else f'exit {rc} (expected 1), expected "{msg}":\n{out}')

    for name, test, sargs, cargs, msg, side in refused_pairs:
        src, sout, crc, cout = perftest(test, sargs, cargs, addr, gid, timeout=120)
        rc, out = (src, sout) if side == 'server' else (crc, cout)
        ok = rc == 1 and msg in out
        ktap.result(ok, f'refused_{name}',
                    diag=None if ok else f'{side} exit {rc} (expected 1), expected "{msg}":\n'
                    f'server:\n{sout}\nclient:\n{cout}')
    return 1 if ktap.failed else 0


if __name__ == '__main__':
    sys.exit(main())
