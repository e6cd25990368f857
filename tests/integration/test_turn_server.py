"""duetd's TURN credentials against a real coturn (issue 16): what
`duetd turn-credentials` prints is exactly what the README tells users to
check their TURN server with, coturn's own turnutils_uclient; here it runs
against a coturn of the test's own on loopback. Wrong, foreign and expired
credentials must fail the same check."""

import os
import re
import subprocess
import tempfile
import time
import unittest

from coturn_harness import Coturn, TurnAllocation, require_coturn
from duet_harness import duetd_command
from test_ice_servers import password_for

SECRET = 'relay-secret-31c9'


def turn_credentials(*args):
    return subprocess.run(duetd_command() + ['turn-credentials'] + list(args), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, errors='replace')


class TurnCredentialsAgainstCoturnTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        require_coturn()
        cls.tmp = tempfile.mkdtemp(prefix='duet-turn-')
        cls.secret_file = os.path.join(cls.tmp, 'turn-secret')
        with open(cls.secret_file, 'w') as f:
            f.write(SECRET + '\n')
        cls.turn = Coturn(SECRET).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.turn.__exit__(None, None, None)

    def mint(self, *args):
        proc = turn_credentials('--turn-secret', self.secret_file, *args)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        user = re.search(r'^username: (\S+)$', proc.stdout, re.M).group(1)
        password = re.search(r'^password: (\S+)$', proc.stdout, re.M).group(1)
        return user, password, proc.stdout

    def assertRelays(self, user, password):
        proc = self.turn.uclient(user, password)
        self.assertEqual(proc.returncode, 0,
                         'turnutils_uclient:\n%s\ncoturn:\n%s' % (proc.stdout, self.turn.log()[-3000:]))
        self.assertIn('tot_recv_msgs=2', proc.stdout, 'both messages came back through the relays')

    def assertRefused(self, user, password):
        proc = self.turn.uclient(user, password)
        self.assertNotEqual(proc.returncode, 0, 'coturn accepted %s / %s:\n%s' % (user, password, proc.stdout))
        self.assertIn('Cannot complete Allocation', proc.stdout)

    def test_the_printed_credentials_and_command_get_working_allocations(self):
        before = int(time.time())
        user, password, text = self.mint('--id', 'vps-check', '--ttl', '10m')
        expiry, name = user.split(':', 1)
        self.assertEqual(name, 'vps-check')
        self.assertTrue(before + 600 <= int(expiry) <= int(time.time()) + 600)
        self.assertEqual(password, password_for(SECRET, user))
        # The command line the user is told to run, as printed.
        self.assertIn("turnutils_uclient -y -c -n 1 -u '%s' -w '%s' -p 3478 TURN-HOST" % (user, password), text)
        self.assertRelays(user, password)
        self.turn.wait_for_log(r'user <%s>: incoming packet ALLOCATE processed, success' % re.escape(user))

    def test_a_wrong_password_is_refused(self):
        user, password, _ = self.mint()
        self.assertRefused(user, password_for('some-other-secret', user))

    def test_credentials_from_another_secret_are_refused(self):
        other = os.path.join(self.tmp, 'other-secret')
        with open(other, 'w') as f:
            f.write('not-' + SECRET)
        proc = turn_credentials('--turn-secret', other)
        user = re.search(r'^username: (\S+)$', proc.stdout, re.M).group(1)
        password = re.search(r'^password: (\S+)$', proc.stdout, re.M).group(1)
        self.assertRefused(user, password)

    def test_an_expired_username_is_refused_even_with_the_right_password(self):
        user = '%d:expired' % (int(time.time()) - 5)
        self.assertRefused(user, password_for(SECRET, user))


class CredentialExpiryTest(unittest.TestCase):
    """What the expiry in the username bounds, as coturn 4.6 does it (the
    README's TTL reasoning rests on this): a new Allocate with an expired
    username is refused, but an allocation made in time keeps being
    refreshed after the expiry, also across a stale-nonce challenge. So a
    call outlives its credentials; only new allocations (an ICE restart)
    need fresh ones, which duetd sends before the old ones expire."""

    STALE_NONCE = 2  # seconds: coturn's stale-nonce option
    # coturn keeps time in whole seconds and updates its clock on a timer, so
    # a nonce (or a username) is seen as stale up to about 2 s after the
    # second it ends in; waiting that long, plus a margin, makes "stale" sure
    # on any machine (a slower one only waits the same).
    CLOCK_SLACK = 2.5

    def test_an_allocation_made_in_time_is_refreshed_after_its_username_expired(self):
        require_coturn()
        with Coturn(SECRET, extra_config=['stale-nonce=%d' % self.STALE_NONCE]) as turn:
            # Expires shortly, but not before the Allocate below (made right away).
            expiry = int(time.time()) + 3
            user = '%d:probe' % expiry
            alloc = TurnAllocation(turn.port, user, password_for(SECRET, user))
            try:
                self.assertEqual(alloc.allocate(), ('success', 0), turn.log()[-2000:])
                self.assertEqual(alloc.stale_nonces, 0, 'a fresh nonce was taken without a 438')
                # Past both the username's expiry and the nonce's lifetime.
                until = max(expiry + 1, alloc.nonce_time + self.STALE_NONCE) + self.CLOCK_SLACK
                time.sleep(max(0.0, until - time.time()))
                self.assertEqual(alloc.refresh(), ('success', 0), 'Refresh after the expiry:\n' + turn.log()[-2000:])
                # What the client saw, not coturn's log (which may lag): the
                # nonce went stale in between, the client got one 438 and
                # its retry with the new nonce (and the expired username) was
                # accepted.
                self.assertEqual(alloc.stale_nonces, 1, 'one 438 Stale Nonce, then success:\n' + turn.log()[-2000:])
                late = TurnAllocation(turn.port, user, password_for(SECRET, user))
                try:
                    self.assertEqual(late.allocate(), ('error', 401), 'a new Allocate with the expired username')
                finally:
                    late.close()
                self.assertEqual(alloc.refresh(0), ('success', 0), 'lifetime 0 frees the allocation')
            finally:
                alloc.close()


class TurnCredentialsCommandTest(unittest.TestCase):

    def test_usage_errors_exit_2_in_words(self):
        tmp = tempfile.mkdtemp(prefix='duet-turn-cmd-')
        empty = os.path.join(tmp, 'empty')
        open(empty, 'w').close()
        for args, words in ((['--id', 'x'], '--turn-secret FILE is required'),
                            (['--turn-secret', os.path.join(tmp, 'missing')], 'cannot read'),
                            (['--turn-secret', empty], 'the file is empty'),
                            (['--turn-secret', empty, '--ttl', 'soon'], '--ttl soon'),
                            (['--turn-secret', empty, '--id', "it's"], 'quotes'),
                            (['--bogus'], 'unknown argument --bogus')):
            proc = turn_credentials(*args)
            self.assertEqual(proc.returncode, 2, '%s: %s' % (args, proc.stderr))
            self.assertIn(words, proc.stderr, args)

    def test_help_names_the_options(self):
        proc = turn_credentials('--help')
        self.assertEqual(proc.returncode, 0)
        for flag in ('--turn-secret FILE', '--id ID', '--ttl DURATION'):
            self.assertIn(flag, proc.stdout)


if __name__ == '__main__':
    unittest.main()
