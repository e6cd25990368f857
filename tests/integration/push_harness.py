"""A Web Push service of the tests' own (RFC 8030, the push service side):
tests/push-service/push_service.js under Node.js, on 127.0.0.1 over HTTPS
with a throwaway certificate that duetd is told to trust.

    with PushService() as push:                 # push.port, push.origin, push.ca_file
        sub = push.subscribe('ok')              # {'id', 'endpoint', 'keys': {'p256dh', 'auth'}}
        ... duetd pushes to sub['endpoint'] ...
        event, = push.wait_pushes(1, sub['id'])
        assert event['errors'] == [], event

Each push duetd sends is checked there with implementations that share
nothing with duetd's (jose for the VAPID JWT, http_ece for the aes128gcm
body) and becomes a 'push' event: id, attempt, status (what was answered,
None for never), headers (ttl, urgency, topic, content_encoding), claims,
vapid_key, plaintext and errors (every check that failed). A subscription's
behaviour says how its pushes are answered: 'ok' (201), 'gone' (410),
'notfound' (404), 'bad-request' (400), 'retry-after:N' (429 with
Retry-After: N, then 201), 'fail:K' (500 K times, then 201), 'never' (no
answer; the connection stays open).

The service's npm modules come from tools/install-deps --tests (npm ci in
tests/push-service). It is stopped by the PID we started, never by name.
"""

import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from duet_harness import REPO_ROOT, START_TIMEOUT, STOP_TIMEOUT, WAIT

NODE = os.environ.get('NODE', 'node')
SERVICE_DIR = os.path.join(REPO_ROOT, 'tests', 'push-service')
SERVICE = os.path.join(SERVICE_DIR, 'push_service.js')
MODULES = ('jose', 'http_ece')


def require_push_service():
    """Skips the calling test (class) when Node.js or the push service's npm
    modules are not installed."""
    if shutil.which(NODE) is None:
        raise unittest.SkipTest('%s is missing: Node.js runs the tests\' push service '
                                '(tools/install-deps --tests installs it)' % NODE)
    for module in MODULES:
        if not os.path.isfile(os.path.join(SERVICE_DIR, 'node_modules', module, 'package.json')):
            raise unittest.SkipTest('the npm module %s is missing in tests/push-service: '
                                    'run tools/install-deps --tests (npm ci there)' % module)
    if shutil.which('openssl') is None:
        raise unittest.SkipTest('the openssl CLI is not installed')


def make_ip_cert(folder):
    """A throwaway P-256 certificate for 127.0.0.1 (and localhost), as the
    push service's endpoint names an IP address. Returns (cert, key)."""
    cert = os.path.join(folder, 'push-cert.pem')
    key = os.path.join(folder, 'push-key.pem')
    proc = subprocess.run(
        ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
         '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
         '-keyout', key, '-out', cert],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    if proc.returncode != 0:
        raise AssertionError('openssl failed to make the push service\'s certificate:\n'
                             + proc.stderr.decode(errors='replace'))
    return cert, key


class PushService:
    def __init__(self, node=None, start_timeout=START_TIMEOUT):
        self.node = node or NODE
        self.start_timeout = start_timeout
        self.dir = tempfile.mkdtemp(prefix='duet-push-')
        self.ca_file = None
        self.key_file = None
        self.port = None
        self.proc = None
        self.returncode = None
        self._events = []
        self._stderr = []
        self._threads = []
        self._changed = threading.Condition()

    # ---- lifecycle -------------------------------------------------------

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc):
        self.close()
        return False

    def start(self):
        """Starts the service and waits for its "listening" event."""
        self.ca_file, self.key_file = make_ip_cert(self.dir)
        cmd = [self.node, SERVICE, '--cert', self.ca_file, '--key', self.key_file]
        self.proc = subprocess.Popen(cmd, cwd=SERVICE_DIR, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._threads = [threading.Thread(target=self._drain_stdout, daemon=True),
                         threading.Thread(target=self._drain_stderr, daemon=True)]
        for t in self._threads:
            t.start()
        listening = self._wait(lambda: [e for e in self._events if e.get('event') == 'listening'],
                               self.start_timeout)
        if not listening:
            raise AssertionError('the push service did not listen within %.0f s (exit %r): %s\n%s'
                                 % (self.start_timeout, self.proc.poll(), cmd, self.log()))
        self.port = listening[0]['port']
        return self

    def close(self):
        """Stops the service (SIGTERM to our PID, SIGKILL if it lingers) and
        removes its folder."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.returncode = self.proc.returncode
            for t in self._threads:
                t.join(5)
            for f in (self.proc.stdout, self.proc.stderr):
                if f and not f.closed:
                    f.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _drain_stdout(self):
        for raw in iter(self.proc.stdout.readline, b''):
            line = raw.decode('utf-8', errors='replace').strip()
            try:
                event = json.loads(line)
            except ValueError:
                event = {'event': 'garbage', 'line': line}
            with self._changed:
                self._events.append(event)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def _drain_stderr(self):
        for raw in iter(self.proc.stderr.readline, b''):
            with self._changed:
                self._stderr.append(raw.decode('utf-8', errors='replace'))

    def _wait(self, check, timeout):
        """Waits until check() (called with the lock held) is true, the
        service exits or timeout passes; returns check()'s last value."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                got = check()
                left = deadline - time.monotonic()
                if got or left <= 0 or self.proc.poll() is not None:
                    return got
                self._changed.wait(min(left, 0.1))

    # ---- accessors -------------------------------------------------------

    @property
    def origin(self):
        return 'https://127.0.0.1:%d' % self.port

    def events(self):
        """Every event so far (dicts, in order)."""
        with self._changed:
            return list(self._events)

    def log(self):
        """The events as JSON lines, then the service's stderr: for failure
        messages."""
        with self._changed:
            return ('events:\n' + ''.join(json.dumps(e) + '\n' for e in self._events)
                    + 'stderr:\n' + ''.join(self._stderr))

    def _pushes(self, sub_id):
        return [e for e in self._events if e.get('event') == 'push' and (sub_id is None or e.get('id') == sub_id)]

    def pushes(self, sub_id=None):
        """The push events so far, of one subscription when sub_id is given."""
        with self._changed:
            return self._pushes(sub_id)

    def connections(self):
        """How many TCP connections the service accepted (TLS or not),
        subscribe()'s own included: compare with a count taken before."""
        with self._changed:
            return sum(1 for e in self._events if e.get('event') == 'connection')

    def wait_pushes(self, n, sub_id=None, timeout=WAIT):
        """Waits until there are at least n push events (of sub_id, if given)
        and returns them all."""
        got = self._wait(lambda: len(self._pushes(sub_id)) >= n, timeout)
        if not got:
            raise AssertionError('the push service got %d of %d pushes%s within %.0f s (service exit %r).\n%s'
                                 % (len(self.pushes(sub_id)), n, ' for %s' % sub_id if sub_id else '',
                                    timeout, self.proc.poll(), self.log()))
        return self.pushes(sub_id)

    def wait_connections(self, n, timeout=WAIT):
        """Waits until the service accepted at least n TCP connections."""
        if not self._wait(lambda: self.connections() >= n, timeout):
            raise AssertionError('the push service accepted %d of %d connections within %.0f s.\n%s'
                                 % (self.connections(), n, timeout, self.log()))
        return self.connections()

    def expect_no_push(self, sub_id, seconds):
        """Waits seconds and fails if a push (for sub_id; None: any) arrives
        meanwhile."""
        before = len(self.pushes(sub_id))
        more = self._wait(lambda: len(self._pushes(sub_id)) > before, seconds)
        if more:
            raise AssertionError('expected no push%s for %.1f s, got %r.\n%s'
                                 % (' for %s' % sub_id if sub_id else '', seconds,
                                    self.pushes(sub_id)[before:], self.log()))

    # ---- subscriptions ---------------------------------------------------

    def ssl_context(self):
        """A client TLS context that trusts only the service's certificate."""
        return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file)

    def subscribe(self, behaviour='ok', host=None):
        """A new subscription, as a browser's PushSubscription.toJSON() gives
        it ({'endpoint', 'keys': {'p256dh', 'auth'}}) plus its 'id'. host
        replaces 127.0.0.1 in the endpoint (and in the VAPID aud expected)."""
        body = {'behaviour': behaviour}
        if host is not None:
            body['host'] = host
        conn = http.client.HTTPSConnection('127.0.0.1', self.port, timeout=WAIT, context=self.ssl_context())
        try:
            conn.request('POST', '/subscribe', json.dumps(body), {'Content-Type': 'application/json'})
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise AssertionError('the push service refused to subscribe %r: %d %s' % (body, resp.status, data[:300]))
        return json.loads(data)
