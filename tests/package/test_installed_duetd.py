"""The duetd of a Debian package, as installed: its version, its bundled
plugins, the web client it serves from /usr/share/duet/web, and a real TLS
WebSocket call set-up (pair, relay) with the configuration file the package
installed. tests/package/check runs it after `apt-get install ./duet_...deb`
(or, for a board package, against the unpacked tree under qemu).

Settings (environment):
  DUETD            the installed binary (default /usr/bin/duetd)
  DUETD_WRAPPER    put in front of it, e.g. 'qemu-aarch64-static -L ...'
  DUET_WEB_ROOT    the installed web client (default /usr/share/duet/web)
  DUET_CONFIG      the installed configuration (default /etc/duet/duetd.conf)
  DUET_RUN_AS      run duetd as this user (e.g. nobody), as the service's
                   unprivileged user would; needs root
  DUET_VERSION     the package's version, which --version must print
"""

import os
import pwd
import shutil
import ssl
import sys
import tempfile
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'integration'))
os.environ.setdefault('DUETD', '/usr/bin/duetd')

from duet_harness import SharedServerTestCase, run_duetd, unique_id  # noqa: E402  (needs the path above)

WEB_ROOT = os.environ.get('DUET_WEB_ROOT', '/usr/share/duet/web')
CONFIG = os.environ.get('DUET_CONFIG', '/etc/duet/duetd.conf')
RUN_AS = os.environ.get('DUET_RUN_AS', '')


def run_as_wrapper():
    """setpriv in front of duetd: the user's ids and no supplementary groups."""
    if not RUN_AS:
        return []
    user = pwd.getpwnam(RUN_AS)
    return ['setpriv', '--reuid=%d' % user.pw_uid, '--regid=%d' % user.pw_gid,
            '--clear-groups', '--']


class InstalledDuetdTest(SharedServerTestCase):
    """One installed duetd on a free loopback port, stopped by its PID at the
    end (it must exit 0 on SIGTERM)."""

    # --port 0 and --address 127.0.0.1 (the harness's) on the command line
    # win over the configuration file's port = 443.
    server_args = ('--config', CONFIG)

    @classmethod
    def setUpClass(cls):
        # A state folder of its own that the unprivileged user can write, in
        # a folder it can enter.
        cls.tmp = tempfile.mkdtemp(prefix='duet-pkg-test-')
        os.chmod(cls.tmp, 0o755)
        cls.state = os.path.join(cls.tmp, 'state')
        os.mkdir(cls.state, 0o700)
        if RUN_AS:
            user = pwd.getpwnam(RUN_AS)
            os.chown(cls.state, user.pw_uid, user.pw_gid)
        super().setUpClass()

    @classmethod
    def server_kwargs(cls):
        return {'web_root': WEB_ROOT, 'state_dir': cls.state, 'wrapper': run_as_wrapper()}

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_version_names_the_packaged_version(self):
        proc = run_duetd(['--version'])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(proc.stdout.startswith('duetd '), proc.stdout)
        expected = os.environ.get('DUET_VERSION')
        if expected:
            self.assertEqual(proc.stdout.split()[1], expected, proc.stdout)

    def test_the_bundled_plugins_load_from_where_the_package_put_them(self):
        proc = run_duetd(['--config', CONFIG, '--list-plugins'])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        for name in ('keepalive', 'auth', 'pairing', 'ice-servers'):
            self.assertIn(name, proc.stdout)

    def test_the_server_runs_as_the_unprivileged_user(self):
        if not RUN_AS:
            self.skipTest('DUET_RUN_AS is not set')
        with open('/proc/%d/status' % self.server.pid) as f:
            uid_line = next(line for line in f if line.startswith('Uid:'))
        self.assertEqual(int(uid_line.split()[1]), pwd.getpwnam(RUN_AS).pw_uid)

    def test_the_installed_web_client_is_served_over_tls(self):
        ctx = ssl.create_default_context(cafile=self.server.ca_file)
        url = 'https://localhost:%d/' % self.server.port
        # The development certificate names localhost; connect to loopback.
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx))
        req = urllib.request.Request(url)
        with opener.open(req, timeout=10) as resp:
            body = resp.read()
        with open(os.path.join(WEB_ROOT, 'index.html'), 'rb') as f:
            self.assertEqual(body, f.read())

    async def test_two_clients_pair_and_relay_an_offer_over_a_tls_websocket(self):
        alice_id, bob_id = unique_id('alice'), unique_id('bob')
        alice = await self.connect('alice')
        bob = await self.connect('bob')
        await alice.open(alice_id, bob_id)
        # Handled before bob's open is sent: two opens on two sockets may be
        # read in either order (under qemu on a busy machine bob's came first).
        await alice.synced()
        await bob.open(bob_id, alice_id)
        self.assertEqual(await alice.recv_json(5), {'start': 'answer'})
        self.assertEqual(await bob.recv_json(5), {'start': 'offer'})
        offer = {'sdp': {'type': 'offer', 'sdp': 'v=0\r\n'}, 'remote': alice_id}
        await bob.send_json(offer)
        self.assertEqual(await alice.recv_json(5), offer)


if __name__ == '__main__':
    unittest.main(verbosity=2)
