#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Doorbell-write offload over RDMA (examples/doorbell-offload), as KTAP.

The lab's NVMe is put on vfio-pci; nvme-offload-target brings it up with
its I/O submission queue in the CMB and exports the CMB and the doorbell
page as vfio-pci dma-bufs, registered as MRs on rxe0; nvme-offload-client
submits every command by RDMA alone. Each case checks what a user would
look at: the blocks in the NVMe's backing file on the host (LAB_NVME_IMG,
a fresh zeroed image per boot), read back through the controller, the
target's own count of the I/O it submitted, that the target process did
not run while the client's I/O went on (its context switches), the
controller's asynchronous events for misuse, and the RDMA completion a
revoked dma-buf gives (IBV_WC_REM_ACCESS_ERR, "remote access error").
"""
import ctypes
import os
import queue
import re
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

LIB = os.path.join(os.environ.get('LAB_TOP', Path(__file__).resolve().parents[4]),
                   'tests/selftests/lib')
sys.path.insert(0, LIB)
from ktap import Ktap  # noqa: E402
from lab_rdma import BUILD, bind_vfio, driver, ensure_rxe, lab_pci_find  # noqa: E402

EXAMPLE = BUILD / 'examples' / 'doorbell-offload'
TARGET = EXAMPLE / 'nvme-offload-target'
CLIENT = EXAMPLE / 'nvme-offload-client'
WAIT = 120		# seconds for one step: a hang, not a slow host
M32 = 0xffffffff
_port = 18700


def next_port():
    global _port
    _port += 1
    return _port


def _die_with_parent():
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Proc:
    """A child whose output lines are collected by a thread; it is killed
    if this program dies first."""

    def __init__(self, argv, stdin=False):
        self.argv = [str(a) for a in argv]
        self.p = subprocess.Popen(self.argv, preexec_fn=_die_with_parent,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True,
                                  stdin=subprocess.PIPE if stdin else subprocess.DEVNULL)
        self.lines = queue.Queue()
        self.log = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.log.append(line.rstrip('\n'))
            self.lines.put(line.rstrip('\n'))
        self.lines.put(None)

    def expect(self, prefix, timeout=WAIT):
        """The next line starting with @prefix, as a dict of its key=value
        words; None if the program ended or the time ran out first."""
        end = time.time() + timeout
        while time.time() < end:
            try:
                line = self.lines.get(timeout=max(0.1, end - time.time()))
            except queue.Empty:
                break
            if line is None:
                return None
            if line.startswith(prefix):
                words = dict(w.split('=', 1) for w in line.split() if '=' in w)
                words['_line'] = line
                return words
        return None

    def send(self, line):
        self.p.stdin.write(line + '\n')
        self.p.stdin.flush()

    def signal(self, sig):
        self.p.send_signal(sig)

    def finish(self, timeout=WAIT):
        if self.p.stdin:
            try:
                self.p.stdin.close()  # a client waiting for a line ends
            except OSError:
                pass
        try:
            self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        time.sleep(0.05)
        return self.p.returncode

    def output(self):
        return '\n'.join([' '.join(self.argv)] + self.log)


class Target(Proc):
    def __init__(self, bdf, *args):
        self.port = next_port()
        super().__init__([TARGET, '-p', self.port] + list(args) + [bdf])
        self.ready = self.expect('ready')
        if not self.ready:
            self.stop()
            return
        lba_size = int(self.ready['lba_size'])
        self.per = int(self.ready['data_slot']) // lba_size  # blocks per command
        self.img = Image(lba_size)

    def stop(self):
        """SIGTERM; its 'stats' line as a dict (or None)."""
        if self.p.poll() is not None:
            return None
        self.signal(signal.SIGTERM)
        stats = self.expect('stats')
        self.finish()
        return stats

    def _sample(self):
        pid = self.p.pid
        st = Path(f'/proc/{pid}/status').read_text()
        sw = [int(x) for x in re.findall(r'ctxt_switches:\s+(\d+)', st)]
        f = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
        return (f[0], tuple(sw), int(f[11]) + int(f[12]))

    def sleeps(self):
        """What changes when the process runs (context switches, CPU
        ticks), once it is asleep: two samples 0.2 s apart agree."""
        a = self._sample()
        for _ in range(50):
            time.sleep(0.2)
            b = self._sample()
            if a == b and a[0] == 'S':
                break
            a = b
        return a[1:]


def client(target, *args, stdin=False):
    return Proc([CLIENT, '-p', target.port] + list(args) + ['localhost'], stdin=stdin)


class Image:
    """The NVMe's namespace, read from the host file (never the guest's PCI path)."""

    def __init__(self, lba_size):
        self.path = os.environ['LAB_NVME_IMG']
        self.lba_size = lba_size

    def read(self, block, count):
        with open(self.path, 'rb', buffering=0) as f:
            f.seek(block * self.lba_size)
            return f.read(count * self.lba_size)


def pattern(seed, block, count, lba_size):
    """What nvme-offload-client writes (its -s): word i of block b is
    seed * 0x01000193 ^ b * 0x9e3779b1 ^ i, 32 bits, little-endian."""
    out = []
    for b in range(block, block + count):
        base = ((seed * 0x01000193) & M32) ^ ((b * 0x9e3779b1) & M32)
        out.append(struct.pack(f'<{lba_size // 4}I',
                               *[base ^ i for i in range(lba_size // 4)]))
    return b''.join(out)


def check_blocks(img, seed, first, count, per_cmd):
    """None if commands first..first+count-1 hold @seed's pattern (or are
    zero when seed is 0), else what differs."""
    for seq in range(first, first + count):
        b = seq * per_cmd
        got = img.read(b, per_cmd)
        want = bytes(len(got)) if seed == 0 else pattern(seed, b, per_cmd, img.lba_size)
        if got != want:
            what = 'zeros' if seed == 0 else f'seed {seed}'
            return f'blocks {b}..{b + per_cmd - 1} (command {seq}) are not {what}: {got[:16].hex()}'
    return None


class Lab:
    def __init__(self):
        self.bdf = lab_pci_find('nvme')
        self.orig = driver(self.bdf) if self.bdf else ''

    def setup(self):
        ensure_rxe()
        bind_vfio(self.bdf)

    def restore(self):
        if not self.bdf or driver(self.bdf) == self.orig:
            return
        dev = Path(f'/sys/bus/pci/devices/{self.bdf}')
        if driver(self.bdf):
            (dev / 'driver' / 'unbind').write_text(self.bdf)
        (dev / 'driver_override').write_text('\n')
        if self.orig:
            Path('/sys/bus/pci/drivers_probe').write_text(self.bdf)


def case_offload(lab, lba0):
    """8 WRITEs and READs by RDMA alone: the bytes land in the image, the
    controller reads them back, and the target process never ran."""
    t = Target(lab.bdf)
    if not t.ready:
        return f'target not ready:\n{t.output()}'
    per, img = t.per, t.img
    c = client(t, '-n', 8, '-r', '-s', 11, '-l', lba0 * per, '-w', stdin=True)
    err = None
    if not c.expect('waiting for=go'):
        err = 'client did not connect'
    else:
        before = t.sleeps()
        c.send('go')
        summary = c.expect('summary')
        if summary and c.expect('waiting for=end'):
            after = t.sleeps()
            c.send('end')
            if before != after:
                err = (f'the target ran during the client\'s I/O: context switches and '
                       f'CPU ticks {before} -> {after}')
        if not summary or summary['completed'] != '8' or summary['failed'] != '0':
            err = f'client: {summary}'
    rc = c.finish()
    stats = t.stop()
    if not err and rc != 0:
        err = f'client exit {rc}'
    if not err and (not stats or stats['io_submissions'] != '0'):
        err = f'the target submitted I/O itself: {stats}'
    if not err:
        err = check_blocks(img, 11, lba0, 8, per)
    return err and f'{err}\n{t.output()}\n{c.output()}'


def case_via_target(lab, lba0):
    """Positive control of the target's count: the same I/O SENT to the
    target, which submits it; 16 submissions (8 WRITEs, 8 READs). Its
    clients get no doorbell: a doorbell write is refused (remote access
    error) and the controller sees nothing."""
    t = Target(lab.bdf, '-m', 'via-target')
    if not t.ready:
        return f'target not ready:\n{t.output()}'
    per, img = t.per, t.img
    c = client(t, '-n', 8, '-r', '-s', 12, '-l', lba0 * per)
    summary = c.expect('summary')
    rc = c.finish()
    # Its clients get the data slots only: no doorbell of their own.
    m = client(t, '-B', 'bad-tail', '-n', 1, '-s', 12, '-l', lba0 * per)
    mis = m.expect('misuse')
    m.finish()
    t.signal(signal.SIGUSR2)
    ev = t.expect('events')
    stats = t.stop()
    err = None
    if rc != 0 or not summary or summary['completed'] != '8':
        err = f'client exit {rc}: {summary}'
    elif not mis or 'remote access error' not in mis['_line']:
        err = f'a via-target client could write the doorbell: {mis}\n{m.output()}'
    elif not ev or ev['n'] != '0':
        err = f'the controller saw a doorbell write: {ev}'
    elif not stats or stats['io_submissions'] != '16':
        err = f'expected 16 submissions by the target: {stats}'
    else:
        err = check_blocks(img, 12, lba0, 8, per)
    return err and f'{err}\n{t.output()}\n{c.output()}'


def case_misuse(lab, lba0):
    """A tail beyond the queue, then a doorbell of a queue that does not
    exist: the controller reports each (asynchronous event, error type,
    invalid doorbell write value 0x1 / invalid doorbell register 0x0),
    ignores the write and keeps working; no fatal status."""
    t = Target(lab.bdf)
    if not t.ready:
        return f'target not ready:\n{t.output()}'
    per, img = t.per, t.img
    err = None
    for i, (kind, info) in enumerate((('bad-tail', '0x1'), ('bad-db', '0x0'))):
        c = client(t, '-B', kind, '-n', 1, '-r', '-s', 13, '-l', (lba0 + i) * per)
        mis = c.expect('misuse')
        summary = c.expect('summary')
        rc = c.finish()
        t.signal(signal.SIGUSR2)
        ev = t.expect('events')
        events = [t.expect('event ') for _ in range(int(ev['n']) if ev else 0)]
        if not mis or mis['wc'] != 'success':
            err = f'{kind}: the doorbell write did not complete: {mis}'
        elif rc != 0 or not summary or summary['completed'] != '1':
            err = f'{kind}: the next command failed (exit {rc}): {summary}'
        elif not ev or int(ev['csts'], 16) & 2:
            err = f'{kind}: controller fatal status after misuse: {ev}'
        elif len(events) != i + 1 or not events[-1] or events[-1]['type'] != '0' or \
                events[-1]['info'] != info:
            err = f'{kind}: expected an error event with info {info}: {events}'
        if err:
            err += f'\n{c.output()}'
            break
    stats = t.stop()
    if not err and (not stats or stats['io_submissions'] != '0'):
        err = f'the target submitted I/O itself: {stats}'
    if not err:
        err = check_blocks(img, 13, lba0, 2, per)
    return err and f'{err}\n{t.output()}'


def case_memory_off(lab, lba0):
    """Memory decoding off revokes both dma-bufs: the client's first RDMA
    WRITE (the payload into the CMB) completes with a remote access error
    and nothing reaches the controller; decoding on restores them, and the
    client resumes on a new QP with the same rkeys (no reset, generation 1),
    writing its resumed commands with seed + 1."""
    t = Target(lab.bdf)
    if not t.ready:
        return f'target not ready:\n{t.output()}'
    per, img = t.per, t.img
    c = client(t, '-S', '-w', '-n', 4, '-s', 14, '-l', lba0 * per, stdin=True)
    err = None
    if not c.expect('waiting for=go'):
        err = 'client did not connect'
    else:
        t.signal(signal.SIGHUP)
        mem = t.expect('memory')
        c.send('go')
        e = c.expect('error')
        if not mem or mem['err'] != '0' or not mem['_line'].startswith('memory off'):
            err = f'memory off failed: {mem}'
        elif not e or e['op'] != 'payload' or 'remote access error' not in e['_line']:
            err = f'expected a remote access error on the payload: {e}'
        elif not c.expect('waiting for=resume'):
            err = 'client did not wait to resume'
        else:
            err = check_blocks(img, 0, lba0, 4, per)
            t.signal(signal.SIGHUP)
            if not t.expect('memory on'):
                err = err or 'memory on failed'
            c.send('resume')
            summary = c.expect('summary')
            if c.expect('waiting for=end'):
                c.send('end')
            if not err and (not summary or summary['completed'] != '4' or
                            summary['reconnects'] != '1' or summary['generation'] != '1'):
                err = f'client did not resume on the same controller: {summary}'
    rc = c.finish()
    stats = t.stop()
    if not err and rc != 0:
        err = f'client exit {rc}'
    if not err and (not stats or stats['io_submissions'] != '0'):
        err = f'the target submitted I/O itself: {stats}'
    if not err:
        err = check_blocks(img, 15, lba0, 4, per)
    return err and f'{err}\n{t.output()}\n{c.output()}'


def case_reset(lab, lba0):
    """An FLR (VFIO_DEVICE_RESET) while the client streams: the client's
    next RDMA operation on the target's MRs fails with a remote access
    error (revoked during the reset, deregistered after it); no command of
    the old queues executes after the reset returned (the image does not
    change while the client waits); the target brings the controller up
    again; a client that missed the reset and uses the old rkeys and queue
    state is refused at its first WRITE (remote access error); the client
    resumes on a new QP (generation 2) from the failed command, with
    another pattern."""
    n = 200
    t = Target(lab.bdf)
    if not t.ready:
        return f'target not ready:\n{t.output()}'
    per, img = t.per, t.img
    c = client(t, '-S', '-X', '-n', n, '-s', 15, '-l', lba0 * per, stdin=True)
    err = None
    done = None
    if not c.expect('streaming'):
        err = 'the client did not stream'
    else:
        t.signal(signal.SIGUSR1)
        reset = t.expect('reset')
        e = c.expect('error')
        if not reset or reset['err'] != '0' or reset['generation'] != '2':
            err = f'reset failed: {reset}'
        elif not e or 'remote access error' not in e['_line']:
            err = f'expected a remote access error: {e}'
        elif not c.expect('waiting for=resume'):
            err = 'client did not wait to resume'
        else:
            done = int(e['completed'])
            # Commands before the failed one completed; the failed one may
            # have executed before the reset; none after it was submitted.
            err = check_blocks(img, 15, lba0, done, per) or \
                check_blocks(img, 0, lba0 + done + 1, n - done - 1, per)
            first = img.read(lba0 * per, n * per)
            time.sleep(2)
            if not err and img.read(lba0 * per, n * per) != first:
                err = 'the image changed after the reset returned'
            c.send('resume')
            stale = c.expect('stale')
            summary = c.expect('summary')
            # The old rkeys are dead: the first WRITE (the payload) fails,
            # so nothing of the old queues can reach the controller.
            if not err and (not stale or stale['op'] != 'payload' or
                            'remote access error' not in stale['_line']):
                err = f'a client with the old rkeys was not refused: {stale}'
            if not err and (not summary or summary['completed'] != str(n) or
                            summary['reconnects'] != '1' or summary['generation'] != '2'):
                err = f'client did not resume on the new queues: {summary}'
    rc = c.finish()
    stats = t.stop()
    if not err and rc != 0:
        err = f'client exit {rc}'
    if not err and (not stats or stats['io_submissions'] != '0'):
        err = f'the target submitted I/O itself: {stats}'
    if not err:
        err = check_blocks(img, 15, lba0, done, per) or \
            check_blocks(img, 16, lba0 + done, n - done, per)
    return err and f'{err}\n{t.output()}\n{c.output()}'


CASES = [
    ('offload_write_read_target_asleep', case_offload),
    ('via_target_counts_its_submissions', case_via_target),
    ('doorbell_misuse_reported_by_controller', case_misuse),
    ('memory_off_revokes_then_resumes', case_memory_off),
    ('reset_while_streaming_revokes_then_resumes', case_reset),
]


def main():
    ktap = Ktap(sys.stdout)
    ktap.line('TAP version 13')
    ktap.line(f'1..{len(CASES)}')
    lab = Lab()
    skip = None
    if not lab.bdf:
        skip = 'no NVMe in the lab'
    elif not any(Path('/sys/class/iommu').iterdir()):
        skip = 'no IOMMU: the target needs DMA addresses for its host memory (no-IOMMU VFIO gives none)'
    elif not TARGET.exists():
        skip = f'{TARGET} not built'
    if skip:
        for name, _ in CASES:
            ktap.result(True, name, directive=f'SKIP {skip}')
        return 0
    lab.setup()
    try:
        # Each case its own range of commands (one command: one data slot).
        for i, (name, fn) in enumerate(CASES):
            err = fn(lab, 1000 * i)
            ktap.result(not err, name, diag=err)
    finally:
        lab.restore()
    return 1 if ktap.failed else 0


if __name__ == '__main__':
    sys.exit(main())
