#!/usr/bin/env python3
"""Sum up the results of lab test runs.

Usage: tests/ktap.py RUNDIR[:LABEL] ...

Each RUNDIR is a lab run directory (lab/run) in which tests/guest-run left
results/*.tap (KTAP or TAP from KUnit and kselftests, with a .rc file holding
each program's exit status) and results/kmemleak.txt. Leaf test results are
counted; a program that exits non-zero, or announces a plan it does not
finish, counts as a failure. The guest console log is searched for kernel
reports (WARN, BUG, KASAN, lockdep, RCU stalls, hung tasks, kmemleak, IOMMU
faults), each of which fails the run. An IOMMU fault is expected, and not
a report, from the start of a program whose settings file says
"<name>.iommu_faults=expected" until the next program starts (tests/guest-run
marks each start in the kernel log). Prints every failure, then one closing line
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
# IOMMU faults: a device's DMA to an IOVA that maps nothing (intel-iommu).
IOMMU_FAULT = re.compile(r'DMAR: \[DMA (Read|Write)|DMAR: DRHD: handling fault')
# tests/guest-run's mark of the program that starts.
PROGRAM_START = re.compile(r'guest-run: start (\S+)')
SELFTESTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'selftests')
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


def expected_iommu_faults(selftests=SELFTESTS):
    """The programs (<area>/<name>) that cause IOMMU faults on purpose."""
    progs = set()
    if not os.path.isdir(selftests):
        return progs
    for area in sorted(os.listdir(selftests)):
        settings = os.path.join(selftests, area, 'settings')
        if not os.path.exists(settings):
            continue
        for line in open(settings):
            m = re.match(r'\s*([\w-]+)\.iommu_faults\s*=\s*expected\s*$', line)
            if m:
                progs.add('%s/%s' % (area, m.group(1)))
    return progs


def log_reports(path, faults_ok=None):
    out = []
    if not os.path.exists(path):
        return out
    if faults_ok is None:
        faults_ok = expected_iommu_faults()
    program = None
    for line in open(path, errors='replace'):
        m = PROGRAM_START.search(line)
        if m:
            program = m.group(1)
            continue
        if IOMMU_FAULT.search(line):
            if program not in faults_ok:
                out.append('%s  (IOMMU fault, program %s)' % (line.rstrip(), program))
            continue
        if REPORT_RE.search(line) and not BENIGN.search(line):
            out.append(line.rstrip())
    return out


def last_output(path, n=5):
    """The last n non-empty lines of a program's output, indented."""
    if not os.path.exists(path):
        return []
    lines = [l.rstrip() for l in open(path, errors='replace') if l.strip()]
    return ['    | ' + l for l in lines[-n:]]


def read_words(path):
    return open(path).read().split() if os.path.exists(path) else []


def summarize_run(run, label):
    """Return (passed, failed, skipped, failures) for one run directory."""
    passed = failed = skipped = 0
    failures = []
    res = os.path.join(run, 'results')
    taps = sorted(f for f in os.listdir(res) if f.endswith('.tap')) if os.path.isdir(res) else []
    if not taps:
        failures.append('[%s] no test results (guest did not run the tests?)' % label)
        failed += 1
    # The program that was running when the boot ended (tests/guest-run):
    # the boot was killed at its timeout, or the guest died.
    running = read_words(os.path.join(res, 'running'))
    for tap in taps:
        prog = tap[:-4]
        path = os.path.join(res, tap)
        results, incomplete = parse_tap(path)
        rc = ''.join(read_words(os.path.join(res, prog + '.rc')))
        took = read_words(os.path.join(res, prog + '.time'))
        if rc in ('124', '137') and len(took) == 2 and float(took[0]) >= float(took[1]):
            # Killed at its own timeout: one failure, named, with what it
            # printed last; the results it gave before still count.
            incomplete = []
            results.append(('timed out after %s s (its timeout)' % took[1], 'fail'))
        elif running and running[0].replace('/', '-', 1) == prog:
            incomplete = []
            results.append(('still running when the boot ended (%s)' %
                            ' '.join(running[1:]), 'fail'))
            rc = ''
        for name, status in results:
            if status == 'pass':
                passed += 1
            elif status == 'skip':
                skipped += 1
            else:
                failed += 1
                failures.append('[%s] %s: %s' % (label, prog, name))
                if name.startswith(('timed out', 'still running')):
                    failures.extend(last_output(path))
        for what in incomplete:
            failed += 1
            failures.append('[%s] %s: incomplete, %s' % (label, prog, what))
        # kselftest exit codes: 0 pass, 4 skip.
        if rc and rc not in ('0', '4') and not any(s == 'fail' for _, s in results):
            failed += 1
            failures.append('[%s] %s: exited with status %s' % (label, prog, rc))
        if not results and not incomplete:
            failed += 1
            failures.append('[%s] %s: no results' % (label, prog))
    console = os.path.join(run, 'console.log')
    if not os.path.exists(console):
        return passed, failed, skipped, failures  # not a lab boot (host-side results)
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


def summarize(args, per_run=None):
    """Return (passed, failed, skipped, failures) over RUNDIR[:LABEL] args.

    per_run, a list, gets one (label, seconds, passed, failed, skipped) per
    run; seconds from the run's check-time file (tests/check), or None.
    """
    total = [0, 0, 0]
    failures = []
    for arg in args:
        run, _, label = arg.partition(':')
        label = label or os.path.basename(run)
        p, f, s, fails = summarize_run(run, label)
        total = [total[0] + p, total[1] + f, total[2] + s]
        failures.extend(fails)
        if per_run is not None:
            secs = read_words(os.path.join(run, 'check-time'))
            per_run.append((label, int(secs[0]) if secs else None, p, f, s))
    return total[0], total[1], total[2], failures


def main(argv):
    per_run = []
    passed, failed, skipped, failures = summarize(argv, per_run)
    for f in failures:
        print('FAIL ' + f)
    for label, secs, p, f, s in per_run:
        took = ' %4d s,' % secs if secs is not None else ''
        print('%-30s%s %d passed, %d failed, %d skipped' % (label + ':', took, p, f, s))
    print('%d passed, %d failed, %d skipped' % (passed, failed, skipped))
    return 1 if failed or not passed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
