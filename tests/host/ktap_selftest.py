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


def make_run(root, name, taps, log=None, leak='', rcs=None):
    run = os.path.join(root, name)
    res = os.path.join(run, 'results')
    os.makedirs(res)
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
