"""A scanner's view of duetd's TLS: Debian's sslscan against duetd on 127.0.0.1.

The policy (issue 6, item 1): TLS 1.2 minimum, forward-secret AEAD cipher
suites only, no compression, no (client-initiated) renegotiation. Checked for
the development certificate (ECDSA P-256) and for an RSA certificate given
with --cert/--key, since the suites a server offers depend on its key type.

Skipped when sslscan is not installed (Debian: apt-get install -y sslscan).
Run: DUETD=build/core/duetd /usr/bin/python3 tests/hostile/test_tls_scan.py
     (DUET_SSLSCAN_SHOW=1 prints the scan's findings even when it passes)
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'integration'))

from duet_harness import Server  # noqa: E402

SSLSCAN = shutil.which('sslscan')
SCAN_TIMEOUT = 120

# Fragments of an OpenSSL/IANA cipher name that make a suite weak.
WEAK = [
    ('NULL', 'no encryption'), ('EXP', 'export grade'), ('RC4', 'RC4'), ('RC2', 'RC2'),
    ('DES', 'DES or 3DES'), ('MD5', 'MD5 MAC'), ('ADH', 'anonymous'), ('AECDH', 'anonymous'),
    ('ANON', 'anonymous'), ('IDEA', 'IDEA'), ('SEED', 'SEED'), ('CAMELLIA', 'not an AEAD suite'),
    ('PSK', 'pre-shared key'), ('SRP', 'SRP'),
]
AEAD = ('GCM', 'CHACHA20', 'POLY1305', 'CCM')
TLS13 = {'TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256',
         'TLS_AES_128_CCM_SHA256'}


def cipher_problems(version, name):
    """Why a suite accepted under version breaks the policy ([] if it does not)."""
    n = name.upper()
    why = [w for frag, w in WEAK if frag in n]
    if version == 'TLSv1.3':
        if name not in TLS13:
            why.append('unexpected TLS 1.3 suite')
        return why
    # TLS 1.2: forward secrecy means an ephemeral (EC)DH key exchange.
    if not (n.startswith('ECDHE-') or n.startswith('DHE-') or n.startswith('TLS_ECDHE_')
            or n.startswith('TLS_DHE_')):
        why.append('no forward secrecy (static RSA/ECDH key exchange)')
    if not any(a in n for a in AEAD):
        why.append('not AEAD (CBC with HMAC-%s)' % ('SHA1' if n.endswith('-SHA') else 'SHA2'))
    return why


def make_rsa_cert(folder):
    cert = os.path.join(folder, 'rsa-cert.pem')
    key = os.path.join(folder, 'rsa-key.pem')
    proc = subprocess.run(
        ['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost',
         '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-days', '2',
         '-keyout', key, '-out', cert],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if proc.returncode != 0:
        raise AssertionError('openssl could not make an RSA certificate:\n' + proc.stderr.decode())
    return cert, key


def scan(port):
    """Runs sslscan; returns (xml root of the ssltest, raw text)."""
    proc = subprocess.run([SSLSCAN, '--no-colour', '--xml=-', '--show-sigs', '127.0.0.1:%d' % port],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=SCAN_TIMEOUT,
                          errors='replace')
    text = proc.stdout
    start = text.find('<?xml')
    if proc.returncode != 0 or start < 0:
        raise AssertionError('sslscan failed (exit %d):\n%s\n%s' % (proc.returncode, text, proc.stderr))
    root = ET.fromstring(text[start:].encode())
    test = root.find('ssltest')
    if test is None:
        raise AssertionError('sslscan XML has no <ssltest>:\n' + text[start:])
    return test, text[start:]


def findings(test):
    """Every breach of the policy that the scan shows, as sentences."""
    out = []
    protocols = {}
    for p in test.findall('protocol'):
        name = '%s %s' % (p.get('type'), p.get('version'))
        protocols[name] = p.get('enabled') == '1'
    for name in ('ssl 2', 'ssl 3', 'tls 1.0', 'tls 1.1'):
        if protocols.get(name):
            out.append('protocol %s is enabled (the minimum is TLS 1.2)' % name)
    if not protocols.get('tls 1.2') and not protocols.get('tls 1.3'):
        out.append('neither TLS 1.2 nor TLS 1.3 is enabled: the scan saw no TLS at all')
    for c in test.findall('cipher'):
        if c.get('status') not in ('accepted', 'preferred'):
            continue
        version, name = c.get('sslversion'), c.get('cipher')
        if version in ('SSLv2', 'SSLv3', 'TLSv1.0', 'TLSv1.1'):
            out.append('%s %s accepted below TLS 1.2' % (version, name))
            continue
        for why in cipher_problems(version, name):
            out.append('%s %s: %s' % (version, name, why))
        bits = int(c.get('bits') or 0)
        if bits and bits < 128:
            out.append('%s %s: only %d bits' % (version, name, bits))
        dh = int(c.get('dhebits') or 0)
        if dh and dh < 2048:
            out.append('%s %s: DHE group of only %d bits' % (version, name, dh))
    for r in test.findall('renegotiation'):
        if r.get('supported') == '1':
            out.append('renegotiation is supported (secure=%s); the policy is none' % r.get('secure'))
    for comp in test.findall('compression'):
        if comp.get('supported') == '1':
            out.append('TLS compression is supported (CRIME)')
    for hb in test.findall('heartbleed'):
        if hb.get('vulnerable') == '1':
            out.append('vulnerable to Heartbleed over %s' % hb.get('sslversion'))
    for fb in test.findall('fallback'):
        if fb.get('supported') == '0':
            out.append('TLS_FALLBACK_SCSV is not honoured')
    return out


def summary(test):
    lines = []
    for p in test.findall('protocol'):
        lines.append('  %s %s: %s' % (p.get('type'), p.get('version'),
                                      'enabled' if p.get('enabled') == '1' else 'disabled'))
    for c in test.findall('cipher'):
        lines.append('  %-8s %-10s %s' % (c.get('sslversion'), c.get('status'), c.get('cipher')))
    for tag in ('renegotiation', 'compression', 'fallback'):
        for e in test.findall(tag):
            lines.append('  %s: %s' % (tag, dict(e.attrib)))
    if not test.findall('compression'):
        lines.append('  compression: not reported (this sslscan\'s OpenSSL has no compression)')
    return '\n'.join(lines)


@unittest.skipIf(SSLSCAN is None, 'sslscan is not installed (apt-get install -y sslscan)')
class TlsScanTest(unittest.TestCase):

    def check(self, server):
        with server as srv:
            test, raw = scan(srv.port)
            srv.assert_alive()
        bad = findings(test)
        if os.environ.get('DUET_SSLSCAN_SHOW') or bad:
            sys.stderr.write('\nsslscan of duetd %s:\n%s\n' % (' '.join(server.extra_args) or '(defaults)',
                                                               summary(test)))
        if bad:
            self.fail('sslscan finds duetd outside the TLS policy:\n  ' + '\n  '.join(bad))

    def test_the_development_certificate_ecdsa(self):
        self.check(Server())

    def test_an_rsa_certificate(self):
        folder = tempfile.mkdtemp(prefix='duet-tls-scan-')
        self.addCleanup(shutil.rmtree, folder, True)
        cert, key = make_rsa_cert(folder)
        self.check(Server(extra_args=['--cert', cert, '--key', key], ca_file=cert))


class PolicyCheckTest(unittest.TestCase):
    """The classifier itself, so a pass above means something."""

    def test_suites(self):
        self.assertEqual(cipher_problems('TLSv1.2', 'ECDHE-ECDSA-AES128-GCM-SHA256'), [])
        self.assertEqual(cipher_problems('TLSv1.2', 'ECDHE-RSA-CHACHA20-POLY1305'), [])
        self.assertEqual(cipher_problems('TLSv1.3', 'TLS_AES_256_GCM_SHA384'), [])
        self.assertTrue(cipher_problems('TLSv1.2', 'ECDHE-ECDSA-AES128-SHA'))
        self.assertTrue(cipher_problems('TLSv1.2', 'ECDHE-RSA-AES256-SHA384'))
        self.assertTrue(cipher_problems('TLSv1.2', 'AES256-GCM-SHA384'))
        self.assertTrue(cipher_problems('TLSv1.2', 'DES-CBC3-SHA'))
        self.assertTrue(cipher_problems('TLSv1.2', 'ADH-AES128-GCM-SHA256'))
        self.assertTrue(cipher_problems('TLSv1.2', 'ECDHE-RSA-NULL-SHA'))

    def test_findings(self):
        xml = ('<ssltest><protocol type="tls" version="1.0" enabled="1"/>'
               '<protocol type="tls" version="1.2" enabled="1"/>'
               '<renegotiation supported="1" secure="1"/><compression supported="1"/>'
               '<cipher status="accepted" sslversion="TLSv1.2" bits="128" cipher="AES128-SHA"/>'
               '</ssltest>')
        got = findings(ET.fromstring(xml))
        self.assertEqual(len(got), 5, got)


if __name__ == '__main__':
    unittest.main()
