#!/usr/bin/env python3
"""Self-test of the kselftests' timeouts (tests/selftests/<area>/settings).

tests/guest-run kills a program at the timeout its directory declares. A
test case's own timeout (TEST_F_TIMEOUT, 30 s by default) must be shorter,
so that the harness names the case that hung and the program goes on;
a program timeout below it would cut the case short instead. Every value
must be a plain number of seconds. Output is TAP.
"""
import glob
import os
import re
import sys

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HARNESS_DEFAULT = 30
CASE = re.compile(r'^\s*(TEST_F_TIMEOUT\s*\([^,]+,[^,]+,\s*(\d+)\s*\)|TEST(_F|_SIGNAL)?\s*\()',
                  re.M)


def settings(area):
    """(directory timeout, {program: timeout}, bad lines) of an area."""
    path = os.path.join(TOP, 'tests/selftests', area, 'settings')
    whole, own, bad = None, {}, []
    if not os.path.exists(path):
        return whole, own, ['no settings file']
    for line in open(path):
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        key, _, val = line.partition('=')
        if key.endswith('.iommu_faults') and val == 'expected':
            continue  # tests/ktap.py's, not a timeout
        if not val.isdigit() or int(val) == 0:
            bad.append(line)
        elif key == 'timeout':
            whole = int(val)
        elif key.endswith('.timeout'):
            own[key[:-len('.timeout')]] = int(val)
        else:
            bad.append(line)
    return whole, own, bad


def main():
    checks = []
    for area in sorted(os.listdir(os.path.join(TOP, 'tests/selftests'))):
        if area == 'lib' or not os.path.isdir(os.path.join(TOP, 'tests/selftests', area)):
            continue
        whole, own, bad = settings(area)
        checks.append(('%s/settings: a timeout for every program, in seconds' % area,
                       whole is not None and not bad, 'bad: %s' % (bad or 'no timeout=N')))
        progs = sorted(glob.glob(os.path.join(TOP, 'tests/selftests', area, '*.[cp]*')))
        names = {os.path.splitext(os.path.basename(p))[0] for p in progs}
        for name in own:
            checks.append(('%s/settings: %s is a program' % (area, name), name in names,
                           'no tests/selftests/%s/%s.*' % (area, name)))
        for prog in progs:
            name, ext = os.path.splitext(os.path.basename(prog))
            if ext != '.c':
                continue
            cases = [int(m.group(2)) if m.group(2) else HARNESS_DEFAULT
                     for m in CASE.finditer(open(prog).read())]
            longest = max(cases, default=0)
            timeout = own.get(name, whole) or 0
            checks.append(('%s/%s: its timeout (%d s) is longer than its longest case (%d s)'
                           % (area, name, timeout, longest), timeout > longest,
                           'raise %s.timeout in %s/settings' % (name, area)))
    print('TAP version 13')
    print('1..%d' % len(checks))
    for i, (name, ok, why) in enumerate(checks, 1):
        print('%s %d %s' % ('ok' if ok else 'not ok', i, name))
        if not ok:
            print('# ' + why)
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == '__main__':
    sys.exit(main())
