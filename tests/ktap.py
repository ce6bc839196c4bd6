#!/usr/bin/env python3
"""Sum up the results of lab test runs.

Usage: tests/ktap.py RUNDIR[:LABEL] ...

Each RUNDIR is a lab run directory (lab/run) in which tests/guest-run left
results/*.tap (KTAP or TAP from KUnit and kselftests, with a .rc file holding
each program's exit status) and results/kmemleak.txt. Leaf test results are
counted; a program that exits non-zero, or announces a plan it does not
finish, counts as a failure. The guest console log is searched for kernel
reports (WARN, BUG, KASAN, lockdep, RCU stalls, hung tasks, kmemleak), each
of which fails the run. Prints every failure, then one closing line
"N passed, N failed, N skipped". Exit status 1 if anything failed or no
test ran.
"""
import os
import re
import sys

RESULT = re.compile(r'^(\s*)(not ok|ok)\s+(\d+)\s*-?\s*([^#]*?)\s*(#\s*(\w+).*)?$')
PLAN = re.compile(r'^(\s*)1\.\.(\d+)')
SUBTEST = re.compile(r'^(\s*)#\s*Subtest:\s*(.*)$')

# Kernel reports that fail a run wherever they appear in the guest log.
REPORTS = [
    r'WARNING: CPU: \d+ PID: \d+',
    r'------------\[ cut here \]------------',
    r'\bBUG: ',
    r'kernel BUG at ',
    r'\bOops\b',
    r'general protection fault',
    r'Kernel panic',
    r'KASAN',
    r'UBSAN:',
    r'possible circular locking dependency',
    r'possible recursive locking detected',
    r'inconsistent lock state',
    r'suspicious RCU usage',
    r'INFO: lockdep is turned off',
    r'DEBUG_LOCKS_WARN_ON',
    r'detected stalls? on CPU',
    r'blocked for more than \d+ seconds',
    r'kmemleak: \d+ new suspected memory leaks',
    r'DMA-API: .* (bug|error)',
    # A checker that switched itself off (e.g. an allocation failed under
    # fault injection) would let later reports go unseen.
    r'dma-debug disabled',
    r'DMA-API: debugging out of memory',
    r'kmemleak: Kernel memory leak detector disabled',
]
REPORT_RE = re.compile('|'.join('(?:%s)' % r for r in REPORTS))
# Lines matching REPORT_RE that are not reports.
BENIGN = re.compile(r'KASAN (init|enabled)|kasan: KernelAddressSanitizer initialized|'
                    r'Kernel command line:|kunit')


def parse_tap(path):
    """Return (results, incomplete) for one TAP/KTAP file.

    results: list of (name, status) for leaf tests, status one of
    'pass', 'fail', 'skip'. incomplete: list of plan descriptions not met.
    """
    results = []
    # Stack of open levels: indent -> [planned, seen, name]
    levels = {}
    last_indent_with_children = set()
    incomplete = []
    lines = open(path, errors='replace').read().splitlines()
    pending = []  # (indent, name, status) to decide leaf-ness
    for line in lines:
        m = PLAN.match(line)
        if m:
            levels[len(m.group(1))] = [int(m.group(2)), 0]
            continue
        m = RESULT.match(line)
        if not m:
            continue
        indent = len(m.group(1))
        ok = m.group(2) == 'ok'
        name = m.group(4).strip()
        directive = (m.group(6) or '').upper()
        if indent in levels:
            levels[indent][1] += 1
        # A result whose deeper level had results is a parent: drop leaves
        # bookkeeping for it, its children were counted.
        has_children = any(i > indent for i in last_indent_with_children)
        last_indent_with_children = {i for i in last_indent_with_children if i <= indent}
        for i in [i for i in levels if i > indent]:
            planned, seen = levels.pop(i)
            if seen < planned:
                incomplete.append('%s: %d of %d results' % (name, seen, planned))
        last_indent_with_children.add(indent)
        if has_children:
            if not ok and directive != 'SKIP':
                # A parent failing with all children passing (e.g. a
                # suite-level init failure) still fails.
                if not any(s == 'fail' for _, s in results[-64:]):
                    results.append((name + ' (suite)', 'fail'))
            continue
        if directive == 'SKIP':
            results.append((name, 'skip'))
        elif ok or directive == 'XFAIL':
            results.append((name, 'pass'))
        else:
            results.append((name, 'fail'))
    for i, (planned, seen) in levels.items():
        if seen < planned:
            incomplete.append('%d of %d planned results' % (seen, planned))
    return results, incomplete


def log_reports(path):
    out = []
    if not os.path.exists(path):
        return out
    for line in open(path, errors='replace'):
        if REPORT_RE.search(line) and not BENIGN.search(line):
            out.append(line.rstrip())
    return out


def summarize(args):
    """Return (passed, failed, skipped, failures) over RUNDIR[:LABEL] args."""
    passed = failed = skipped = 0
    failures = []
    for arg in args:
        run, _, label = arg.partition(':')
        label = label or os.path.basename(run)
        res = os.path.join(run, 'results')
        taps = sorted(f for f in os.listdir(res) if f.endswith('.tap')) if os.path.isdir(res) else []
        if not taps:
            failures.append('[%s] no test results (guest did not run the tests?)' % label)
            failed += 1
        for tap in taps:
            prog = tap[:-4]
            results, incomplete = parse_tap(os.path.join(res, tap))
            for name, status in results:
                if status == 'pass':
                    passed += 1
                elif status == 'skip':
                    skipped += 1
                else:
                    failed += 1
                    failures.append('[%s] %s: %s' % (label, prog, name))
            for what in incomplete:
                failed += 1
                failures.append('[%s] %s: incomplete, %s' % (label, prog, what))
            rcf = os.path.join(res, prog + '.rc')
            if os.path.exists(rcf):
                rc = open(rcf).read().strip()
                # kselftest exit codes: 0 pass, 4 skip.
                if rc not in ('0', '4') and not any(s == 'fail' for _, s in results):
                    failed += 1
                    failures.append('[%s] %s: exited with status %s' % (label, prog, rc))
            if not results and not incomplete:
                failed += 1
                failures.append('[%s] %s: no results' % (label, prog))
        console = os.path.join(run, 'console.log')
        if not os.path.exists(console):
            continue    # not a lab boot (host-side results)
        # The guest log and the leak reports are one check per boot.
        reports = log_reports(console)
        leaks = [os.path.join(res, f) for f in ('kmemleak-boot.txt', 'kmemleak.txt')]
        for f in leaks:
            if os.path.exists(f) and open(f).read().strip():
                reports.append('kmemleak (%s): %s' % (os.path.basename(f),
                               open(f).read().strip().splitlines()[0]))
        if not os.path.exists(leaks[1]):
            reports.append('no kmemleak scan result (tests did not finish?)')
        if reports:
            failed += 1
            failures.append('[%s] kernel reports in the guest log:' % label)
            failures.extend('    ' + r for r in reports[:40])
        else:
            passed += 1
    return passed, failed, skipped, failures


def main(argv):
    passed, failed, skipped, failures = summarize(argv)
    for f in failures:
        print('FAIL ' + f)
    print('%d passed, %d failed, %d skipped' % (passed, failed, skipped))
    return 1 if failed or not passed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
