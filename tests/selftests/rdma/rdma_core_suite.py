#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""rdma-core's own test suite (its tests/run_tests.py) on rxe0, as KTAP.

Runs every test of the patched rdma-core built by 'make userspace'
(build/rdma-core, pyverbs from its build tree) against the lab's Soft-RoCE
device, one KTAP line per test, with dma-bufs from the system heap (the
pyverbs allocator's choice on a machine without a GPU, forced here with
PYVERBS_DMABUF_SOURCE). The dma-buf tests then run a second time with
udmabuf buffers. Two checks close the run: each dma-buf test of
tests/test_mr.py passed with both sources (a skip there means the rxe
dma-buf MR path was not exercised, which is a failure here).

Tests that fail for reasons outside this project are listed in KNOWN with
the reason and reported as skipped, never run: nothing is hidden. So are
the test modules of one kind of hardware (HARDWARE: mlx5, EFA, CUDA),
whose tests would only skip themselves on rxe, slowly. rdma-core's
timeouts, set for hardware, are stretched for the lab (be_patient()).

Usage: rdma_core_suite.py [NAME-SUBSTRING...]  (only tests whose id
contains one of them; the closing checks are then left out)
"""
import importlib.machinery
import os
import sys
import traceback
import unittest
from pathlib import Path

BUILD = Path(__file__).resolve().parents[3]
sys.path.insert(0, os.path.join(os.environ.get('LAB_TOP', BUILD.parent),
                                'tests/selftests/lib'))
from ktap import Ktap  # noqa: E402
from lab_rdma import DEV, ensure_rxe  # noqa: E402

RDMA_CORE = BUILD / 'rdma-core'

# Test id -> why it cannot pass in the lab (and why that is not ours).
KNOWN = {
    'tests.test_rdmacm.CMTestCase.test_rdmacm_async_resolve_addrinfo':
        "librdmacm's asynchronous rdma_resolve_addrinfo() fails with "
        'EAI_NONAME for the guest address on both sides (passive and '
        'active); the synchronous rdma_getaddrinfo() path of the other '
        'rdmacm tests works; no dma-buf is involved',
}

# Test modules for one kind of hardware, by id prefix: on rxe each of their
# tests skips itself in setUp, after opening the device, which costs 2-5 s
# a test under TCG (five minutes in all). They are reported as skipped
# without being run, with this reason.
HARDWARE = {
    'tests.test_mlx5_': 'mlx5 (ConnectX)',
    'tests.test_efa': 'EFA',
    'tests.test_cuda_': 'a CUDA GPU',
}

# The dma-buf tests of rdma-core's suite that must pass on rxe.
DMABUF_TESTS = ('tests.test_mr.DmaBufMRTest.', 'tests.test_mr.DmaBufTestCase.')


class KtapResult(unittest.TestResult):
    """One KTAP line per test; records each test's outcome."""

    def __init__(self, ktap, prefix, outcomes):
        super().__init__()
        self.ktap, self.prefix, self.outcomes = ktap, prefix, outcomes
        self.failed_diag = None

    def startTest(self, test):
        super().startTest(test)
        self.failed_diag = None
        self.skip_reason = None

    def _fail(self, test, err):
        text = ''.join(traceback.format_exception(*err))
        self.failed_diag = (self.failed_diag or '') + text

    def addError(self, test, err):
        super().addError(test, err)
        self._fail(test, err)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._fail(test, err)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._fail(subtest, err)

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.failed_diag = 'unexpected success'

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.skip_reason = reason

    def stopTest(self, test):
        super().stopTest(test)
        name = self.prefix + test.id()
        if self.failed_diag is not None:
            self.outcomes[name] = 'fail'
            self.ktap.result(False, name, diag=self.failed_diag)
        elif self.skip_reason is not None:
            self.outcomes[name] = 'skip'
            reason = ' '.join(self.skip_reason.split())
            self.ktap.result(True, name, 'SKIP ' + reason)
        else:
            self.outcomes[name] = 'pass'
            self.ktap.result(True, name)


def load_suite():
    """Import rdma-core's tests package as its run_tests.py does."""
    sys.path[:0] = [str(RDMA_CORE / 'build' / 'python'),
                    str(RDMA_CORE / 'tests')]
    sys.argv[1:] = ['--dev', DEV]
    from args_parser import parser
    parser.parse_args()
    loader = importlib.machinery.SourceFileLoader(
        'tests', str(RDMA_CORE / 'tests' / '__init__.py'))
    tests = loader.load_module()  # noqa: the deprecated call run_tests.py uses

    def flatten(suite):
        for t in suite:
            if isinstance(t, unittest.TestSuite):
                yield from flatten(t)
            else:
                yield t
    return list(flatten(unittest.defaultTestLoader.loadTestsFromModule(tests)))


class _PatientContext:
    """A multiprocessing context whose barriers and joins wait PATIENCE
    times longer (rdma-core's rdmacm tests give up after 15 s and 30 s)."""

    def __init__(self, ctx):
        self._ctx = ctx

    def __getattr__(self, name):
        return getattr(self._ctx, name)

    def Barrier(self, parties, action=None, timeout=None):
        return self._ctx.Barrier(parties, action,
                                 timeout and timeout * PATIENCE)

    def Process(self, *args, **kwargs):
        proc = self._ctx.Process(*args, **kwargs)
        join = proc.join
        proc.join = lambda timeout=None: join(timeout and timeout * PATIENCE)
        return proc


class _PatientMp:
    def __init__(self, mp):
        self._mp = mp

    def __getattr__(self, name):
        return getattr(self._mp, name)

    def get_context(self, method=None):
        return _PatientContext(self._mp.get_context(method))


# How many times longer than rdma-core's own bounds the suite may wait: its
# timeouts are set for hardware, the lab runs rxe under TCG on a machine
# that may be busy. Only waits are stretched; a test that passes returns as
# soon as it did before.
PATIENCE = 4


def be_patient():
    """Stretch rdma-core's timeouts (not its checks) by PATIENCE."""
    base, utils = sys.modules['tests.base'], sys.modules['tests.utils']
    utils.POLL_CQ_TIMEOUT *= PATIENCE       # polling a CQ for a completion
    # The QPs' transport timeout, 4.096 us << TIMEOUT: 14 is 67 ms, 17 is
    # 0.5 s before a retransmission.
    base.TIMEOUT = max(base.TIMEOUT, 17)
    base.mp = _PatientMp(base.mp)


def skip_known(case):
    reason = KNOWN.get(case.id())
    if reason:
        reason = 'known, not ours: ' + reason
    for prefix, what in HARDWARE.items():
        if case.id().startswith(prefix):
            reason = f'needs {what}, the lab has {DEV} (not run: it would skip)'
    if reason:
        method = getattr(case, case._testMethodName)
        setattr(case, case._testMethodName,
                unittest.skip(reason)(method))


def run(cases, ktap, prefix, outcomes):
    result = KtapResult(ktap, prefix, outcomes)
    for case in cases:
        case(result)


def main():
    filters = sys.argv[1:]
    ensure_rxe()
    # The tests print to stdout and stderr; keep that out of the KTAP
    # stream and show it at the end.
    ktap_out = os.fdopen(os.dup(1), 'w')
    log_path = f'/tmp/rdma_core_suite.{os.getpid()}.log'
    log = open(log_path, 'w+')
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    ktap = Ktap(ktap_out)
    ktap.line('TAP version 13')

    cases = load_suite()
    be_patient()
    if filters:
        cases = [c for c in cases if any(f in c.id() for f in filters)]
    # The same test objects run again; unittest allows that.
    dmabuf = [c for c in cases if c.id().startswith(DMABUF_TESTS)]
    for c in cases:
        skip_known(c)
    known = sum(c.id() in KNOWN for c in cases)
    hardware = sum(c.id().startswith(tuple(HARDWARE)) for c in cases)
    checks = 0 if filters else 2
    ktap.line(f'1..{len(cases) + len(dmabuf) + checks}')

    outcomes = {}
    os.environ['PYVERBS_DMABUF_SOURCE'] = 'heap'
    run(cases, ktap, '', outcomes)
    os.environ['PYVERBS_DMABUF_SOURCE'] = 'udmabuf'
    run(dmabuf, ktap, 'udmabuf:', outcomes)

    if not filters:
        for prefix, source in (('', 'heap'), ('udmabuf:', 'udmabuf')):
            names = [prefix + c.id() for c in dmabuf]
            bad = [n for n in names if outcomes.get(n) != 'pass']
            ktap.result(bool(names) and not bad,
                        f'dmabuf_tests_pass_with_{source}',
                        diag='\n'.join(f'{n}: {outcomes.get(n)}' for n in bad)
                        or (None if names else 'no dma-buf test found'))

    first = [v for k, v in outcomes.items() if not k.startswith('udmabuf:')]
    counts = {k: first.count(k) for k in ('pass', 'fail', 'skip')}
    sys.stdout.flush()
    sys.stderr.flush()
    log.flush()
    log.seek(0)
    lines = log.read().splitlines()
    rerun = [v for k, v in outcomes.items() if k.startswith('udmabuf:')]
    ktap.line(f'# rdma-core suite on {DEV}: {counts["pass"]} passed, '
              f'{counts["fail"]} failed, {counts["skip"]} skipped '
              f'({known} of them known failures, {hardware} for other '
              f'hardware); dma-buf tests with '
              f'udmabuf: {rerun.count("pass")} of {len(rerun)} passed')
    if lines:
        ktap.line(f'# output of the tests (last 100 of {len(lines)} lines):')
    for text in lines[-100:]:
        ktap.line('#   ' + text)
    os.unlink(log_path)
    return 1 if ktap.failed else 0


if __name__ == '__main__':
    sys.exit(main())
