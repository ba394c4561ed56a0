"""A read job for tests/test_layout.py: what a reader process has loaded."""

import sys


def loaded(conn):
    popen = sys.modules["subprocess"].Popen.__init__ if "subprocess" in sys.modules else None
    return "traceforge_client" in sys.modules, getattr(popen, "__module__", "subprocess")
