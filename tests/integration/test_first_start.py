"""Several duetd started at the same moment on one fresh state folder (issue
22): the development certificate is made once, under the folder's lock, and
every server comes up serving that one certificate. Before the lock, two
servers could each make a pair and one would read the other's key and stop
with "key values mismatch".

Run: DUETD=build/core/duetd /usr/bin/python3 tests/integration/test_first_start.py
"""

import hashlib
import os
import shutil
import socket
import ssl
import sys
import tempfile
import time
import unittest

from duet_harness import Server, stop_checked

SERVERS = 4
ROUNDS = 3

# Put in front of duetd: says it is ready (a file GO.PID.ready), waits until
# the file GO (its first argument) exists, then becomes duetd (exec keeps
# the pid, so signals reach duetd). Python starts slowly; the wait lets every
# duetd start within a few milliseconds of the others, which a plain series
# of launches would not.
BARRIER = (
    'import os, sys, time\n'
    'open("%s.%d.ready" % (sys.argv[1], os.getpid()), "w").close()\n'
    'while not os.path.exists(sys.argv[1]):\n'
    '    time.sleep(0.002)\n'
    'os.execvp(sys.argv[2], sys.argv[2:])\n'
)


def served_certificate(server):
    """The DER certificate duetd presents in a TLS handshake. Not verified
    here: the test compares it with the others and with the file."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((server.host, server.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname='localhost') as s:
            return s.getpeercert(binary_form=True)


def fingerprint(der):
    return hashlib.sha256(der).hexdigest()


class ConcurrentFirstStartTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='duet-first-start-')
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def start_together(self, state_dir, go_file):
        """Launches SERVERS duetd held at the barrier, releases them at once,
        and returns them listening (each on a port of its own)."""
        servers = []
        for _ in range(SERVERS):
            srv = Server(state_dir=state_dir, port=0, start_timeout=60,
                         wrapper=[sys.executable, '-c', BARRIER, go_file])
            self.addCleanup(srv.cleanup)
            servers.append(srv.launch())
        ready = ['%s.%d.ready' % (go_file, srv.pid) for srv in servers]
        deadline = time.monotonic() + 60
        while not all(os.path.exists(r) for r in ready):
            for srv in servers:
                if not srv.alive():
                    srv.wait_until_listening()  # fails, with its log
            self.assertLess(time.monotonic(), deadline, 'the barrier wrappers did not start')
            time.sleep(0.01)
        with open(go_file, 'w'):
            pass
        for srv in servers:
            srv.wait_until_listening()
        return servers

    def test_servers_started_at_once_on_a_fresh_state_folder_serve_one_certificate(self):
        for round_no in range(ROUNDS):
            with self.subTest(round=round_no):
                state = os.path.join(self.tmp, 'state-%d' % round_no, 'duet')
                servers = self.start_together(state, os.path.join(self.tmp, 'go-%d' % round_no))
                logs = '\n---\n'.join(s.log() for s in servers)
                self.assertEqual(len({s.port for s in servers}), SERVERS, 'ports: %r' % [s.port for s in servers])
                with open(os.path.join(state, 'dev-cert.pem')) as f:
                    on_disk = fingerprint(ssl.PEM_cert_to_DER_cert(f.read()))
                # A completed handshake also proves each server holds the
                # certificate's own key.
                served = [fingerprint(served_certificate(s)) for s in servers]
                self.assertEqual(served, [on_disk] * SERVERS,
                                 'the servers do not all serve dev-cert.pem\nlogs:\n%s' % logs)
                made = sum('made a new self-signed' in s.log() for s in servers)
                self.assertEqual(made, 1, 'expected exactly one server to make the pair\nlogs:\n%s' % logs)
                # Nothing half-made is left; the ring plugin, when built,
                # makes its Web Push key at start too (vapid.pem).
                names = sorted(set(os.listdir(state)) - {'vapid.pem'})
                self.assertEqual(names, ['dev-cert.lock', 'dev-cert.pem', 'dev-key.pem'])
                self.assertEqual(os.stat(os.path.join(state, 'dev-key.pem')).st_mode & 0o777, 0o600)
                for srv in servers:
                    stop_checked(srv)


if __name__ == '__main__':
    unittest.main()
