"""The integration tests' protocol flow against a cross-built duetd running
under emulation: native Python clients on loopback, the ARM server under
qemu-user. It reuses the integration suites unchanged: TLS and the
tutorial protocol (pairing, relay, close, reconnects, takeover) from
test_signaling, static files and path escapes from test_static_files, and
JSON pings, server pings and dead-peer closes from test_keepalive.

Run (tools/cross/check does this):
  DUETD=build-aarch64/core/duetd \
  DUETD_WRAPPER='qemu-aarch64-static -L /usr/aarch64-linux-gnu' \
  /usr/bin/python3 tests/install/test_emulated_protocol.py

DUETD_WRAPPER is split like a shell command line and put in front of every
duetd the tests start. Until the harness honours it itself, this module
teaches it how (see wrap_harness).
"""

import os
import shlex
import shutil
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'integration'))

import duet_harness  # noqa: E402  (needs the path above)

WRAPPER = shlex.split(os.environ.get('DUETD_WRAPPER', ''))
# Starting an emulated duetd and its first TLS handshakes take longer.
START_TIMEOUT = float(os.environ.get('DUETD_START_TIMEOUT', '30'))

SUITES = ['test_signaling', 'test_static_files', 'test_keepalive']


def wrap_harness():
    """Make the harness start duetd under WRAPPER, unless it already does.

    Must run before the test modules are imported: they bind run_duetd with
    `from duet_harness import run_duetd`."""
    if getattr(duet_harness, 'DUETD_WRAPPER_SUPPORTED', False):
        return
    original_init = duet_harness.Server.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        if WRAPPER and not self.wrapper:
            self.wrapper = list(WRAPPER)
        self.start_timeout = max(self.start_timeout, START_TIMEOUT)

    duet_harness.Server.__init__ = init

    def run_duetd(args, timeout=10.0, env=None):
        cmd = WRAPPER + [duet_harness.duetd_path()] + list(args)
        try:
            return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL, timeout=max(timeout, START_TIMEOUT),
                                  env=env, errors='replace')
        except subprocess.TimeoutExpired:
            raise AssertionError('%r did not exit within %.0f s' % (cmd, timeout)) from None

    duet_harness.run_duetd = run_duetd


class WrapperTest(unittest.TestCase):
    """The server under test really is the emulated one."""

    def test_duetd_runs_under_the_wrapper_and_reports_its_version(self):
        proc = duet_harness.run_duetd(['--version'])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertRegex(proc.stdout, r'^duetd \d+\.\d+\.\d+')

    def test_the_server_process_is_the_wrapper(self):
        if not WRAPPER:
            self.skipTest('DUETD_WRAPPER is not set: testing a native duetd')
        with duet_harness.Server() as srv:
            exe = os.path.realpath('/proc/%d/exe' % srv.proc.pid)
            self.assertEqual(os.path.basename(exe),
                             os.path.basename(os.path.realpath(shutil.which(WRAPPER[0]) or WRAPPER[0])))

    def test_the_bundled_plugins_are_linked_in(self):
        proc = duet_harness.run_duetd(['--list-plugins', '--address', '127.0.0.1', '--port', '0',
                                       '--web-root', os.path.join(HERE)])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        for name in ('keepalive', 'pairing'):
            self.assertRegex(proc.stdout, r'(?m)^%s \S+ .*\[built-in' % name)


def load_tests(loader, standard_tests, pattern):
    wrap_harness()
    suite = unittest.TestSuite()
    suite.addTests(loader.loadTestsFromTestCase(WrapperTest))
    only = os.environ.get('DUET_EMULATED_SUITES')
    for name in (only.split(',') if only else SUITES):
        suite.addTests(loader.loadTestsFromModule(__import__(name)))
    return suite


if __name__ == '__main__':
    unittest.main(verbosity=2)
