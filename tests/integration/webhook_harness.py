"""A webhook receiver of the tests' own: tests/webhook-receiver/receiver.js
under Node.js, on 127.0.0.1 over HTTPS with a throwaway certificate that
duetd is told to trust (webhooks.ca-file), checking every request with the
Standard Webhooks reference library (the standardwebhooks npm package).

    with WebhookReceiver() as hooks:            # hooks.url, .ca_file, .secret_file
        srv = Server(extra_args=hooks.duetd_args() + [...])
        ... calls ...
        started, = hooks.wait_events(lambda b: b['type'] == 'call.started', 1)
        hooks.set_mode('fail')                  # 503 from now on ('drop', 'hang', 'redirect', 'ok')

Each webhook duetd sends becomes a request event: id and timestamp (the
webhook-id and webhook-timestamp headers), verified (standardwebhooks
accepted it), error (why not), status (what was answered, None for none),
body (the JSON body, parsed), received_ms (the receiver's clock, ms since
the epoch), content_type and path. A request is delivered when it verified
and was answered 2xx; the same event may be delivered more than once (same
id): deliveries() keeps the first of each id.

The receiver's npm module comes from tools/install-deps --tests (npm ci in
tests/webhook-receiver). It is stopped by the PID we started, never by name.
"""

import base64
import http.client
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from duet_harness import REPO_ROOT, START_TIMEOUT, STOP_TIMEOUT, WAIT
from push_harness import make_ip_cert

NODE = os.environ.get('NODE', 'node')
RECEIVER_DIR = os.path.join(REPO_ROOT, 'tests', 'webhook-receiver')
RECEIVER = os.path.join(RECEIVER_DIR, 'receiver.js')
MODULES = ('standardwebhooks',)
MODES = ('ok', 'fail', 'drop', 'hang', 'redirect')
# Where the receiver's redirect mode sends webhooks (307): a path duetd is
# never given, so a request there is one that followed the redirect.
REDIRECT_PATH = '/redirected'


def require_webhook_receiver():
    """Skips the calling test (class, module) when Node.js, the receiver's
    npm module or the openssl CLI is not installed."""
    if shutil.which(NODE) is None:
        raise unittest.SkipTest('%s is missing: Node.js runs the tests\' webhook receiver '
                                '(tools/install-deps --tests installs it)' % NODE)
    for module in MODULES:
        if not os.path.isfile(os.path.join(RECEIVER_DIR, 'node_modules', module, 'package.json')):
            raise unittest.SkipTest('the npm module %s is missing in tests/webhook-receiver: '
                                    'run tools/install-deps --tests (npm ci there)' % module)
    if shutil.which('openssl') is None:
        raise unittest.SkipTest('the openssl CLI is not installed')


def write_secret(path, key=None):
    """Writes a Standard Webhooks secret (whsec_ and the base64 of 32 random
    bytes, or of key) to path; returns the whsec_ text."""
    text = 'whsec_' + base64.b64encode(key if key is not None else secrets.token_bytes(32)).decode()
    with open(path, 'w') as f:
        f.write(text + '\n')
    return text


def read_outbox(path):
    """The events in an outbox file (STATE_DIR/webhooks/outbox*.jsonl) as
    duetd wrote it: a list of {'id', 'created_ms', 'body', 'delivered'} in
    the file's order, delivered when a "delivered" line for the id follows.
    An absent file has none. (The file's format is duetd's own, not an
    interface: only the tests of the outbox look into it.)"""
    events, by_id = [], {}
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
    except FileNotFoundError:
        return events
    # The last piece is '' or a line still being written: no record (duetd
    # drops one a crash cut short, too).
    for line in text.split('\n')[:-1]:
        if not line:
            continue
        record = json.loads(line)
        if 'event' in record:
            event = dict(record['event'], delivered=False)
            events.append(event)
            by_id[event['id']] = event
        elif record.get('delivered') in by_id:
            by_id[record['delivered']]['delivered'] = True
    return events


def pending_in_outbox(path):
    """The events of an outbox file not yet delivered."""
    return [e for e in read_outbox(path) if not e['delivered']]


def delivered(request):
    """Whether a request event is a delivery: signed right and taken (2xx)."""
    return request['verified'] and request['status'] is not None and 200 <= request['status'] < 300


class WebhookReceiver:
    def __init__(self, mode='ok', node=None, start_timeout=START_TIMEOUT):
        if mode not in MODES:
            raise ValueError('mode is one of %s' % (MODES,))
        self.initial_mode = mode
        self.node = node or NODE
        self.start_timeout = start_timeout
        self.dir = tempfile.mkdtemp(prefix='duet-webhooks-')
        self.secret_file = os.path.join(self.dir, 'webhook-secret')
        self.secret = None
        self.ca_file = None
        self.key_file = None
        self.port = None
        self.proc = None
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
        """Starts the receiver and waits for its "listening" event."""
        self.ca_file, self.key_file = make_ip_cert(self.dir)
        self.secret = write_secret(self.secret_file)
        cmd = [self.node, RECEIVER, '--cert', self.ca_file, '--key', self.key_file,
               '--secret-file', self.secret_file, '--mode', self.initial_mode]
        self.proc = subprocess.Popen(cmd, cwd=RECEIVER_DIR, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._threads = [threading.Thread(target=self._drain_stdout, daemon=True),
                         threading.Thread(target=self._drain_stderr, daemon=True)]
        for t in self._threads:
            t.start()
        listening = self._wait(lambda: [e for e in self._events if e.get('event') == 'listening'],
                               self.start_timeout)
        if not listening:
            raise AssertionError('the webhook receiver did not listen within %.0f s (exit %r): %s\n%s'
                                 % (self.start_timeout, self.proc.poll(), cmd, self.log()))
        self.port = listening[0]['port']
        return self

    def close(self):
        """Stops the receiver (SIGTERM to our PID, SIGKILL if it lingers)
        and removes its folder."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
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
        receiver exits or timeout passes; returns check()'s last value."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                got = check()
                left = deadline - time.monotonic()
                if got or left <= 0 or self.proc.poll() is not None:
                    return got
                self._changed.wait(min(left, 0.1))

    # ---- what duetd is told ----------------------------------------------

    @property
    def url(self):
        return 'https://127.0.0.1:%d/hook' % self.port

    def duetd_args(self):
        """The duetd options that send webhooks here."""
        return ['--webhook', self.url, '--webhook-secret', self.secret_file,
                '--plugin-opt', 'webhooks.ca-file=' + self.ca_file]

    # ---- control ---------------------------------------------------------

    def set_mode(self, mode):
        """How webhooks are answered from now on: 'ok' (200), 'fail' (503),
        'drop' (the connection closed, no answer), 'hang' (no answer),
        'redirect' (307 to REDIRECT_PATH here, which is answered as in ok)."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file)
        conn = http.client.HTTPSConnection('127.0.0.1', self.port, timeout=WAIT, context=ctx)
        try:
            conn.request('POST', '/control', json.dumps({'mode': mode}), {'Content-Type': 'application/json'})
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise AssertionError('the webhook receiver refused mode %r: %d %s' % (mode, resp.status, data[:300]))

    # ---- what it saw -----------------------------------------------------

    def log(self):
        """The events as JSON lines, then the receiver's stderr: for failure
        messages."""
        with self._changed:
            return ('receiver events:\n' + ''.join(json.dumps(e) + '\n' for e in self._events)
                    + 'receiver stderr:\n' + ''.join(self._stderr))

    def _requests(self):
        return [e for e in self._events if e.get('event') == 'request']

    def requests(self):
        """Every webhook request so far (attempts that failed included), in order."""
        with self._changed:
            return self._requests()

    def _deliveries(self):
        first = {}
        for r in self._requests():
            if delivered(r) and r['id'] not in first:
                first[r['id']] = r
        return list(first.values())

    def deliveries(self):
        """The first delivery of each webhook-id, in order of arrival."""
        with self._changed:
            return self._deliveries()

    def wait_requests(self, check, what, timeout=WAIT):
        """Waits until check(requests) is true for the request events so far
        and returns its value."""
        got = self._wait(lambda: check(self._requests()), timeout)
        if not got:
            raise AssertionError('the webhook receiver never saw %s within %.0f s (receiver exit %r).\n%s'
                                 % (what, timeout, self.proc.poll(), self.log()))
        return got

    def wait_events(self, match, n, timeout=WAIT, what=None):
        """Waits until at least n distinct events (webhook-ids) whose body
        match(body) accepts are delivered; returns their first deliveries."""
        def found():
            return [r for r in self._deliveries() if isinstance(r['body'], dict) and match(r['body'])]
        got = self._wait(lambda: len(found()) >= n, timeout)
        if not got:
            with self._changed:
                have = found()
            raise AssertionError('the webhook receiver got %d of %d %s within %.0f s (receiver exit %r).\n%s'
                                 % (len(have), n, what or 'matching events', timeout, self.proc.poll(), self.log()))
        with self._changed:
            return found()

    def expect_no_delivery(self, match, seconds):
        """Waits seconds and fails if an event match(body) accepts is delivered."""
        def found():
            return [r for r in self._deliveries() if isinstance(r['body'], dict) and match(r['body'])]
        more = self._wait(found, seconds)
        if more:
            raise AssertionError('expected no such event for %.1f s, got %r.\n%s' % (seconds, more, self.log()))
