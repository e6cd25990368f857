"""tools/systemd/certbot-deploy-hook, run the way certbot runs it (with
RENEWED_LINEAGE set) against a made-up lineage and state folder: it copies
the chain and key privately, ignores other certificates when told to, and
fails clearly when certbot's variable is missing.

Run: /usr/bin/python3 tests/install/test_certbot_hook.py
"""

import os
import shutil
import stat
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
HOOK = os.path.join(os.path.dirname(os.path.dirname(HERE)), 'tools', 'systemd', 'certbot-deploy-hook')


class CertbotHookTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='duet-hook-')
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.lineage = os.path.join(self.tmp, 'live', 'call.example.org')
        os.makedirs(self.lineage)
        # certbot's live/ files are links into archive/; the hook must copy contents.
        archive = os.path.join(self.tmp, 'archive')
        os.makedirs(archive)
        for name, text in (('fullchain', 'CHAIN-1'), ('privkey', 'KEY-1')):
            real = os.path.join(archive, name + '1.pem')
            with open(real, 'w') as f:
                f.write(text)
            os.symlink(real, os.path.join(self.lineage, name + '.pem'))
        self.state = os.path.join(self.tmp, 'state')

    def run_hook(self, **env):
        full = dict(os.environ, RENEWED_LINEAGE=self.lineage, DUET_STATE_DIR=self.state,
                    DUET_SERVICE='duet-test-nonexistent.service')
        full.update(env)
        return subprocess.run(['sh', HOOK], env={k: v for k, v in full.items() if v is not None},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=30)

    def read(self, name):
        with open(os.path.join(self.state, 'tls', name)) as f:
            return f.read()

    def test_the_chain_and_key_are_copied_into_the_state_folder_readable_only_by_its_owner(self):
        proc = self.run_hook()
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(self.read('fullchain.pem'), 'CHAIN-1')
        self.assertEqual(self.read('privkey.pem'), 'KEY-1')
        tls = os.path.join(self.state, 'tls')
        for name in ('fullchain.pem', 'privkey.pem'):
            path = os.path.join(tls, name)
            self.assertFalse(os.path.islink(path))
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600, name)
        self.assertEqual(stat.S_IMODE(os.stat(tls).st_mode) & 0o077, 0)
        self.assertEqual(sorted(os.listdir(tls)), ['fullchain.pem', 'privkey.pem'],
                         'no temporary files are left behind')

    def test_a_renewal_replaces_the_previous_files(self):
        self.assertEqual(self.run_hook().returncode, 0)
        for name, text in (('fullchain', 'CHAIN-2'), ('privkey', 'KEY-2')):
            path = os.path.join(self.lineage, name + '.pem')
            os.remove(path)
            with open(path, 'w') as f:
                f.write(text)
        proc = self.run_hook()
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(self.read('fullchain.pem'), 'CHAIN-2')
        self.assertEqual(self.read('privkey.pem'), 'KEY-2')

    def test_another_certificate_is_ignored_when_a_name_is_set(self):
        proc = self.run_hook(DUET_CERT_NAME='other.example.org')
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertFalse(os.path.exists(self.state))

    def test_without_renewed_lineage_the_hook_fails_and_says_why(self):
        proc = self.run_hook(RENEWED_LINEAGE=None)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn('RENEWED_LINEAGE', proc.stderr)

    def test_a_lineage_without_a_key_fails_and_names_the_file(self):
        os.remove(os.path.join(self.lineage, 'privkey.pem'))
        proc = self.run_hook()
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn('privkey.pem', proc.stderr)


if __name__ == '__main__':
    unittest.main(verbosity=2)
