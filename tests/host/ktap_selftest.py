#!/usr/bin/env python3
"""Self-test of tests/ktap.py, the summariser that decides `make check`.

It feeds synthetic run directories (results and guest console logs) to
ktap.summarize() and checks the counts: a runner that miscounts or misses a
kernel report would let broken code pass. Output is TAP.
"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import ktap  # noqa: E402

KUNIT = """KTAP version 1
1..1
    KTAP version 1
    # Subtest: suite
    1..3
    ok 1 a
    not ok 2 b
    ok 3 c # SKIP not here
not ok 1 suite
"""
SELFTEST = """TAP version 13
1..3
# Starting 3 tests from 1 test cases.
ok 1 global.one
not ok 2 global.two
ok 3 global.three # SKIP no device
# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:1 error:0
"""
TRUNCATED = """TAP version 13
1..3
ok 1 global.one
"""
CLEAN_LOG = """[    0.000000] Linux version 6.12.117-p2p-lab
[    1.000000] kasan: KernelAddressSanitizer initialized (generic)
[    2.000000] Kernel command line: oops=panic
"""
REPORTS = {
    'warn': '[   10.1] WARNING: CPU: 1 PID: 77 at drivers/dma-buf/dma-buf.c:1 x+0x1/0x2\n',
    'kasan': '[   10.1] BUG: KASAN: slab-use-after-free in foo+0x1/0x2\n',
    'lockdep': '[   10.1] WARNING: possible circular locking dependency detected\n',
    'sleep': '[   10.1] BUG: sleeping function called from invalid context at x.c:1\n',
    'hung': '[  300.1] INFO: task foo:12 blocked for more than 120 seconds.\n',
    'rcu': '[   30.1] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:\n',
    'dma-debug-off': '[  112.1] DMA-API: cacheline tracking ENOMEM, dma-debug disabled\n',
}


def make_run(root, name, taps, log=None, leak='', rcs=None, times=None, running=None):
    run = os.path.join(root, name)
    res = os.path.join(run, 'results')
    os.makedirs(res)
    for prog, text in (times or {}).items():
        with open(os.path.join(res, prog + '.time'), 'w') as f:
            f.write(text + '\n')
    if running is not None:
        with open(os.path.join(res, 'running'), 'w') as f:
            f.write(running)
    for prog, text in taps.items():
        with open(os.path.join(res, prog + '.tap'), 'w') as f:
            f.write(text)
    for prog, rc in (rcs or {}).items():
        with open(os.path.join(res, prog + '.rc'), 'w') as f:
            f.write('%d\n' % rc)
    if log is not None:
        with open(os.path.join(run, 'console.log'), 'w') as f:
            f.write(log)
        with open(os.path.join(res, 'kmemleak.txt'), 'w') as f:
            f.write(leak)
    return run


def main():
    checks = []
    with tempfile.TemporaryDirectory() as root:
        def check(name, args, want):
            got = ktap.summarize(args)[:3]
            checks.append((name, got == want, 'got %s, want %s' % (got, want)))

        check('kunit nested: leaves counted, failing suite not double-counted',
              [make_run(root, 'k', {'kunit-suite': KUNIT})], (1, 1, 1))
        check('kselftest: pass, fail, skip',
              [make_run(root, 's', {'x': SELFTEST}, rcs={'x': 1})], (1, 1, 1))
        check('truncated plan is a failure',
              [make_run(root, 't', {'x': TRUNCATED}, rcs={'x': 0})], (1, 1, 0))
        check('crash after passing results is a failure',
              [make_run(root, 'c', {'x': 'TAP version 13\n1..1\nok 1 a\n'}, rcs={'x': 139})],
              (1, 1, 0))
        check('no results at all is a failure', [make_run(root, 'n', {})], (0, 1, 0))
        check('clean guest log passes its check',
              [make_run(root, 'l', {'x': 'ok 1 a\n'}, log=CLEAN_LOG)], (2, 0, 0))
        for kind, line in sorted(REPORTS.items()):
            check('guest log %s report fails the run' % kind,
                  [make_run(root, 'r-' + kind, {'x': 'ok 1 a\n'}, log=CLEAN_LOG + line)],
                  (1, 1, 0))
        hung = 'TAP version 13\n1..3\nok 1 a\nok 2 b\n#  RUN  f.c ...\n'
        check('program killed at its timeout: one failure, earlier results count',
              [make_run(root, 'to', {'x': hung}, rcs={'x': 124}, times={'x': '300.4 300'})],
              (2, 1, 0))
        check('the timeout failure names the program and shows its last output',
              [make_run(root, 'to2', {'x': hung}, rcs={'x': 137}, times={'x': '310.0 300'})],
              (2, 1, 0))
        got = ktap.summarize([os.path.join(root, 'to2') + ':b'])[3]
        checks.append(('timeout failure text', 'x: timed out after 300 s'
                       in got[0] and 'RUN  f.c' in got[-1], repr(got)))
        check('status 124 before the timeout is an exit status, not a timeout',
              [make_run(root, 'to3', {'x': 'ok 1 a\n'}, rcs={'x': 124}, times={'x': '2.0 300'})],
              (1, 1, 0))
        check('program running when the boot was killed: one failure, named',
              [make_run(root, 'run', {'y-x': hung, 'z': 'ok 1 a\n'}, rcs={'z': 0},
                        running='y/x since 1700000000 timeout 300\n')], (3, 1, 0))
        check('an empty running file names nothing',
              [make_run(root, 'run2', {'z': 'ok 1 a\n'}, rcs={'z': 0}, running='')], (1, 0, 0))
        per_run = []
        with open(os.path.join(make_run(root, 'pr', {'z': 'ok 1 a\n'}, rcs={'z': 0}),
                               'check-time'), 'w') as f:
            f.write('612\n')
        ktap.summarize([os.path.join(root, 'pr') + ':amd', os.path.join(root, 'to') + ':b'],
                       per_run)
        checks.append(('one line of counts per boot, with its time',
                       per_run == [('amd', 612, 1, 0, 0), ('b', None, 2, 1, 0)], repr(per_run)))
        fault = ('[   40.1] DMAR: DRHD: handling fault status reg 2\n'
                 '[   40.2] DMAR: [DMA Write NO_PASID] Request device [05:00.0] '
                 'fault addr 0x40000000 [fault reason 0x05] PTE Write access is not set\n')
        start = '[   39.0] guest-run: start %s\n'
        sel = os.path.join(root, 'selftests')
        os.makedirs(os.path.join(sel, 'io'))
        with open(os.path.join(sel, 'io', 'settings'), 'w') as f:
            f.write('timeout=60\nfaulty.iommu_faults=expected\n')
        ok = ktap.expected_iommu_faults(sel)
        checks.append(('settings name the programs that fault on purpose',
                       ok == {'io/faulty'}, repr(ok)))
        with open(os.path.join(root, 'f.log'), 'w') as f:
            f.write(CLEAN_LOG + start % 'io/faulty' + fault + start % 'io/next' + fault)
        got = ktap.log_reports(os.path.join(root, 'f.log'), ok)
        checks.append(('IOMMU faults fail the run except after an expecting program',
                       len(got) == 2 and all('io/next' in g for g in got), repr(got)))
        check('an IOMMU fault before any program fails the run',
              [make_run(root, 'fa', {'x': 'ok 1 a\n'}, log=CLEAN_LOG + fault)], (1, 1, 0))
        check('kmemleak report fails the run',
              [make_run(root, 'm', {'x': 'ok 1 a\n'}, log=CLEAN_LOG,
                        leak='unreferenced object 0xffff888 (size 64):\n')], (1, 1, 0))
    print('TAP version 13')
    print('1..%d' % len(checks))
    for i, (name, ok, why) in enumerate(checks, 1):
        print('%s %d %s' % ('ok' if ok else 'not ok', i, name))
        if not ok:
            print('# ' + why)
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == '__main__':
    sys.exit(main())
