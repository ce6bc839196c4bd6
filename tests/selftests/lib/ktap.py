# SPDX-License-Identifier: GPL-2.0
"""KTAP output for the Python kselftests (tests/selftests/<area>/*.py).

The lab's runner (tests/guest-run) reads one KTAP stream per program;
tests/ktap.py sums them. Import with the library directory on sys.path:

    sys.path.insert(0, os.path.join(os.environ['LAB_TOP'], 'tests/selftests/lib'))
    from ktap import Ktap
"""


class Ktap:
    """Numbered result lines, diagnostics as '# ' lines before them."""

    def __init__(self, out):
        self.out = out
        self.n = 0
        self.failed = 0

    def line(self, text):
        self.out.write(text + '\n')
        self.out.flush()

    def result(self, ok, name, directive=None, diag=None):
        self.n += 1
        self.failed += not ok
        for d in (diag or '').rstrip().splitlines():
            self.line('# ' + d)
        text = f"{'ok' if ok else 'not ok'} {self.n} {name}"
        self.line(text + (f' # {directive}' if directive else ''))
