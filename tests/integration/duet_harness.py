"""Shared harness for duet's integration tests.

The tests start the real duetd binary (path in $DUETD) on a free port, talk to
it over real TLS sockets, and read what it logs. Nothing here fakes the server:
a test that passes has seen duetd do the thing.

Only the standard library and python3-websockets (10.x, asyncio API) are used,
so the suite runs with Debian's /usr/bin/python3 and no virtualenv.
"""

import asyncio
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
import uuid

import websockets
import websockets.exceptions

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))

LISTENING_RE = re.compile(r'listening on (https|http)://([^ ]*):(\d+)/')
# Generous on purpose: these bound waits for things that take milliseconds on
# an idle machine, but CI runs the suites under ASan next to other builds, on
# two cores. A wait polls (or blocks) until its event, so a generous bound
# only makes a failing test slower to report, never a passing one slower.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
# How long a test waits for a message, a log line or a state change that
# must come.
WAIT = 20.0


def duetd_path():
    """The duetd binary under test: $DUETD, or the default build folder."""
    path = os.environ.get('DUETD') or os.path.join(REPO_ROOT, 'build', 'core', 'duetd')
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise AssertionError(
            'duetd binary not found at %r: build it (ninja -C build) and/or set '
            'DUETD to its path' % path)
    return path


# DUETD_WRAPPER: a command line put in front of every duetd the tests start,
# e.g. 'qemu-aarch64-static -L /usr/aarch64-linux-gnu' for a cross-built one
# (tools/cross/check). Emulated servers start slower: the start timeout grows.
DUETD_WRAPPER_SUPPORTED = True
WRAPPER = shlex.split(os.environ.get('DUETD_WRAPPER', ''))
if WRAPPER:
    START_TIMEOUT = 60.0


def duetd_command(duetd=None):
    """The command that starts duetd: the wrapper, if any, and the binary
    (duetd, default duetd_path())."""
    return WRAPPER + [duetd or duetd_path()]


def unique_id(prefix='peer'):
    """An id no other test uses, so tests sharing one server never meet."""
    return '%s-%s' % (prefix, uuid.uuid4().hex[:12])


def have_ipv6_loopback():
    """Whether this machine can bind and connect on ::1."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(('::1', 0))
        return True
    except OSError:
        return False


def make_cert(folder, cn='localhost', name='test'):
    """Make a throwaway EC certificate and key with the openssl CLI.

    Returns (cert_path, key_path)."""
    os.makedirs(folder, exist_ok=True)
    cert = os.path.join(folder, name + '-cert.pem')
    key = os.path.join(folder, name + '-key.pem')
    openssl = shutil.which('openssl')
    if openssl is None:
        raise unittest.SkipTest('the openssl CLI is not installed')
    proc = subprocess.run(
        [openssl, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
         '-nodes', '-subj', '/CN=' + cn, '-addext', 'subjectAltName=DNS:' + cn,
         '-days', '2', '-keyout', key, '-out', cert],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    if proc.returncode != 0:
        raise AssertionError('openssl failed to make a test certificate:\n'
                             + proc.stderr.decode(errors='replace'))
    return cert, key


def ssl_context(ca_file, alpn=('http/1.1',)):
    """A client TLS context that trusts only ca_file and checks host names.

    Connect to 127.0.0.1 but pass server_hostname='localhost' (the dev
    certificate names both)."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def run_duetd(args, timeout=30.0, env=None):
    """Run duetd to completion (for options that make it exit right away).

    Returns a CompletedProcess with text stdout/stderr. A duetd that does not
    exit within the timeout is killed (it is our own child) and the test fails.
    """
    cmd = duetd_command() + list(args)
    timeout = max(timeout, START_TIMEOUT) if WRAPPER else timeout
    try:
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, timeout=timeout, env=env,
                              errors='replace')
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors='replace') if isinstance(e.stdout, bytes) else (e.stdout or '')
        err = e.stderr.decode(errors='replace') if isinstance(e.stderr, bytes) else (e.stderr or '')
        raise AssertionError('duetd %r did not exit within %.0f s (it should have).\n'
                             'stdout:\n%s\nstderr:\n%s' % (args, timeout, out, err)) from None


class Server:
    """One duetd process on a free port, as a context manager.

        with Server(extra_args=['--no-tls']) as srv:
            ... srv.port, srv.url, srv.ws_url, srv.ca_file, srv.log() ...

    The state dir is a fresh temporary folder unless state_dir is given; the
    web root is an (empty) temporary folder unless web_root is given. With
    address=None no --address is passed (duetd then listens on all families),
    with port=None no --port. ca_file: the certificate clients trust (default:
    the development certificate duetd makes in the state dir). duetd: the
    binary to run (default duetd_path(): $DUETD or build/core/duetd).
    keepalive_interval: the server's JSON ping interval in seconds unless
    extra_args set one (None: duetd's own default).
    """

    def __init__(self, extra_args=(), web_root=None, state_dir=None,
                 address='127.0.0.1', port=0, ca_file=None, wrapper=(), start_timeout=None,
                 duetd=None, keepalive_interval=3600):
        self.extra_args = list(extra_args)
        self.duetd = duetd
        self.keepalive_interval = keepalive_interval
        self.wrapper = list(wrapper)  # e.g. ['valgrind', ...]: runs duetd under it
        self.start_timeout = start_timeout or START_TIMEOUT
        self._tmp = tempfile.mkdtemp(prefix='duet-itest-')
        self.state_dir = state_dir or os.path.join(self._tmp, 'state')
        if web_root is None:
            web_root = os.path.join(self._tmp, 'web')
            os.makedirs(web_root, exist_ok=True)
        self.web_root = web_root
        self.address = address
        self.requested_port = port
        self._ca_file = ca_file
        self.proc = None
        self._cmd = None
        self.port = None
        self.scheme = None
        self.listen_host = None
        self.returncode = None
        self._stderr_lines = []
        self._stdout_chunks = []
        self._lock = threading.Lock()
        self._listening = threading.Event()
        self._threads = []

    # ---- lifecycle -------------------------------------------------------

    def command(self):
        cmd = self.wrapper + duetd_command(self.duetd)
        if self.address is not None:
            cmd += ['--address', self.address]
        if self.requested_port is not None:
            cmd += ['--port', str(self.requested_port)]
        cmd += ['--state-dir', self.state_dir, '--web-root', self.web_root]
        # Server JSON pings (keepalive, every 30 s by default) would land in the
        # middle of exact message checks on a slow machine; tests of keepalive
        # set their own interval.
        joined = ' '.join(self.extra_args)
        if (self.keepalive_interval is not None and 'keepalive.' not in joined
                and '--no-default-plugins' not in joined):
            cmd += ['--plugin-opt', 'keepalive.interval=%d' % self.keepalive_interval]
        return cmd + self.extra_args

    def start(self):
        """Starts duetd and waits until it listens."""
        self.launch()
        return self.wait_until_listening()

    def launch(self):
        """Starts duetd without waiting (for several started at once);
        wait_until_listening() follows."""
        cmd = self.command()
        self._cmd = cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        t_err = threading.Thread(target=self._drain_stderr, daemon=True)
        t_out = threading.Thread(target=self._drain_stdout, daemon=True)
        t_err.start()
        t_out.start()
        self._threads = [t_err, t_out]
        return self

    def wait_until_listening(self):
        """Waits until a launched duetd logs "listening on"; fails (after
        killing it) if it exits first or takes longer than start_timeout."""
        cmd = self._cmd
        deadline = time.monotonic() + self.start_timeout
        while not self._listening.is_set():
            if self.proc.poll() is not None:
                # Let the reader collect the last lines before reporting.
                for t in self._threads:
                    t.join(timeout=2)
                if self._listening.is_set():
                    break
                rc = self.proc.returncode
                self.returncode = rc
                raise AssertionError('duetd exited with code %s before listening.\n'
                                     'command: %s\nstderr:\n%s' % (rc, cmd, self.log()))
            if time.monotonic() > deadline:
                self._kill()
                raise AssertionError('duetd did not log "listening on ..." within %.0f s.\n'
                                     'command: %s\nstderr:\n%s' % (self.start_timeout, cmd, self.log()))
            self._listening.wait(0.05)
        return self

    def _drain_stderr(self):
        for raw in iter(self.proc.stderr.readline, b''):
            line = raw.decode('utf-8', errors='replace')
            with self._lock:
                self._stderr_lines.append(line)
            if not self._listening.is_set():
                m = LISTENING_RE.search(line)
                if m:
                    self.scheme = m.group(1)
                    self.listen_host = m.group(2)
                    self.port = int(m.group(3))
                    self._listening.set()
        self.proc.stderr.close()

    def _drain_stdout(self):
        for raw in iter(lambda: self.proc.stdout.read1(65536), b''):
            with self._lock:
                self._stdout_chunks.append(raw)
        self.proc.stdout.close()

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Send sig and wait for duetd to exit; returns its exit code.

        If it does not exit in time it is killed with SIGKILL and the test
        fails: a clean shutdown is part of the contract."""
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._kill()
                self._join()
                raise AssertionError('duetd (pid %d) did not exit within %.0f s of signal %s; '
                                     'killed it with SIGKILL.\nstderr:\n%s'
                                     % (self.proc.pid, timeout, sig, self.log()))
        self._join()
        self.returncode = self.proc.returncode
        return self.returncode

    def wait(self, timeout=STOP_TIMEOUT):
        """Wait (without signalling) for duetd to exit; returns its exit code.
        Fails, after killing it, if it is still running after timeout."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill()
            self._join()
            raise AssertionError('duetd (pid %d) still running %.0f s after it was asked to '
                                 'stop; killed it with SIGKILL.\nstderr:\n%s'
                                 % (self.proc.pid, timeout, self.log()))
        self._join()
        self.returncode = self.proc.returncode
        return self.returncode

    def _join(self):
        for t in self._threads:
            t.join(timeout=5)

    def cleanup(self):
        self._kill()
        self._join()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc):
        rc = 0
        try:
            if self.proc is not None and self.proc.poll() is None:
                rc = self.stop()
        finally:
            log = self.log()
            self.cleanup()
        # A sanitizer report at exit shows up only as a non-zero exit code.
        if rc != 0 and exc[0] is None:
            raise AssertionError('duetd exited with code %s on SIGTERM (expected 0).\nstderr:\n%s' % (rc, log))
        return False

    # ---- accessors -------------------------------------------------------

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def tls(self):
        return self.scheme == 'https'

    @property
    def host(self):
        """The address the tests connect to."""
        if self.address in (None, '0.0.0.0', '::'):
            return '127.0.0.1'
        return self.address

    @property
    def url(self):
        return '%s://%s:%d/' % (self.scheme, _bracket(self.host), self.port)

    @property
    def ws_url(self):
        return '%s://%s:%d/' % ('wss' if self.tls else 'ws', _bracket(self.host), self.port)

    @property
    def ca_file(self):
        if self._ca_file:
            return self._ca_file
        return os.path.join(self.state_dir, 'dev-cert.pem')

    def log(self):
        with self._lock:
            return ''.join(self._stderr_lines)

    def stdout(self):
        with self._lock:
            return b''.join(self._stdout_chunks).decode('utf-8', errors='replace')

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def assert_alive(self):
        if not self.alive():
            self._join()
            raise AssertionError('duetd died (exit code %s, negative = signal).\nstderr:\n%s'
                                 % (self.proc.returncode if self.proc else None, self.log()))

    def wait_for_log(self, pattern, timeout=WAIT):
        """Wait until stderr has a line matching the regex; returns the match."""
        return wait_for_match(self.log, pattern, timeout, 'duetd')


def wait_for_match(read_log, pattern, timeout, who):
    """Polls read_log() until the regex matches and returns the match; the
    AssertionError names who never logged it and shows the log."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        text = read_log()
        m = rx.search(text)
        if m:
            return m
        if time.monotonic() > deadline:
            raise AssertionError('%s never logged %r within %.1f s.\nlog:\n%s'
                                 % (who, pattern, timeout, text[-3000:]))
        time.sleep(0.05)


def _bracket(host):
    return '[%s]' % host if ':' in host else host


# ---------------------------------------------------------------------------
# WebSocket client
# ---------------------------------------------------------------------------

class Closed(AssertionError):
    """The server closed the WebSocket while we waited for a message."""

    def __init__(self, code, reason):
        super().__init__('WebSocket closed by server: code=%s reason=%r' % (code, reason))
        self.code = code
        self.reason = reason


class Client:
    """A signaling client: one WebSocket speaking JSON text frames."""

    def __init__(self, ws, name=''):
        self.ws = ws
        self.name = name

    @classmethod
    async def connect(cls, server, name='', host=None, path='/', timeout=WAIT, **kwargs):
        host = host or server.host
        uri = '%s://%s:%d%s' % ('wss' if server.tls else 'ws', _bracket(host), server.port, path)
        opts = dict(subprotocols=None, open_timeout=timeout, ping_interval=None,
                    close_timeout=2, max_size=None)
        if server.tls:
            opts['ssl'] = kwargs.pop('ssl', None) or ssl_context(server.ca_file, alpn=None)
            opts['server_hostname'] = kwargs.pop('server_hostname', 'localhost')
        opts.update(kwargs)
        ws = await asyncio.wait_for(websockets.connect(uri, **opts), timeout)
        return cls(ws, name)

    def __repr__(self):
        return '<Client %s>' % self.name

    async def send_text(self, text):
        await asyncio.wait_for(self.ws.send(text), WAIT)

    async def send_json(self, obj):
        await self.send_text(json.dumps(obj, separators=(',', ':'), ensure_ascii=False))

    async def send_fragments(self, parts, binary=False):
        """Send one message as several WebSocket frames (continuations)."""
        if binary:
            parts = [p.encode() if isinstance(p, str) else p for p in parts]
        await asyncio.wait_for(self.ws.send(iter(parts)), WAIT)

    async def send_raw_frame(self, opcode, data, fin=True):
        """Send a single frame with an arbitrary payload (e.g. invalid UTF-8 in a
        text frame), bypassing the client's own checks."""
        await asyncio.wait_for(self.ws.write_frame(fin, opcode, data), WAIT)

    async def open(self, local, remote):
        await self.send_json({'open': {'local': local, 'remote': remote}})

    async def recv_text(self, timeout=WAIT):
        try:
            msg = await asyncio.wait_for(self.ws.recv(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError('%s: no message within %.1f s' % (self.name or 'client', timeout))
        except websockets.exceptions.ConnectionClosed as e:
            raise Closed(e.rcvd.code if e.rcvd else None, e.rcvd.reason if e.rcvd else None)
        if isinstance(msg, bytes):
            raise AssertionError('%s: server sent a binary frame: %r' % (self.name, msg[:200]))
        return msg

    async def recv_json(self, timeout=WAIT):
        text = await self.recv_text(timeout)
        try:
            obj = json.loads(text)
        except ValueError as e:
            raise AssertionError('%s: server sent invalid JSON %r (%s)' % (self.name, text[:200], e))
        if not isinstance(obj, dict):
            raise AssertionError('%s: server sent a non-object %r' % (self.name, text[:200]))
        return obj

    async def expect_nothing(self, timeout=0.3):
        """Assert that no message arrives within timeout (a close also fails)."""
        try:
            msg = await asyncio.wait_for(self.ws.recv(), timeout)
        except asyncio.TimeoutError:
            return
        except websockets.exceptions.ConnectionClosed as e:
            raise AssertionError('%s: expected silence, but the server closed the WebSocket '
                                 '(code %s)' % (self.name, e.rcvd.code if e.rcvd else None))
        raise AssertionError('%s: expected no message, got %r' % (self.name, msg[:300]))

    async def expect_close(self, code=None, timeout=WAIT):
        """Read until the server closes; returns (code, messages seen before)."""
        seen = []
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError('%s: the server did not close the WebSocket within '
                                     '%.1f s (messages seen: %r)' % (self.name, timeout, seen))
            try:
                msg = await asyncio.wait_for(self.ws.recv(), left)
                seen.append(msg)
            except asyncio.TimeoutError:
                continue
            except websockets.exceptions.ConnectionClosed as e:
                got = e.rcvd.code if e.rcvd else None
                if code is not None and got != code:
                    raise AssertionError('%s: WebSocket closed with code %s, expected %s '
                                         '(reason %r; messages before: %r)'
                                         % (self.name, got, code,
                                            e.rcvd.reason if e.rcvd else None, seen))
                return got, seen

    async def ping_pong(self, timeout=WAIT):
        """Round-trip a JSON keepalive; proves the connection is usable."""
        await self.send_json({'ping': 1})
        return await self.recv_json(timeout)

    async def synced(self, timeout=WAIT):
        """A WebSocket ping/pong round trip (not a message: no plugin and no
        rate limit sees it). duetd reads a connection's frames in order on
        one loop and handles each message as it reads it, so once the pong
        is back it has handled everything sent before the ping: a test that
        sent an open on this connection may then act on another connection
        that depends on it. (A reply the server queued may still be on its
        way: read it with recv_json, as before.)"""
        try:
            waiter = await asyncio.wait_for(self.ws.ping(), timeout)
            await asyncio.wait_for(waiter, timeout)
        except asyncio.TimeoutError:
            raise AssertionError('%s: no WebSocket pong within %.1f s' % (self.name or 'client', timeout))
        except websockets.exceptions.ConnectionClosed as e:
            raise Closed(e.rcvd.code if e.rcvd else None, e.rcvd.reason if e.rcvd else None)

    async def replies_before_pong(self, timeout=WAIT):
        """Sends a JSON ping and returns the messages that arrive before its
        {"pong":1}: the server answers a connection's messages in order, so
        these are every answer to what was sent before, however slow the
        server is. For a message that may be answered or taken silently."""
        await self.send_json({'ping': 1})
        got = []
        while True:
            m = await self.recv_json(timeout)
            if m == {'pong': 1}:
                return got
            got.append(m)

    async def close(self):
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 3)

    @property
    def is_open(self):
        return self.ws.open


# ---------------------------------------------------------------------------
# Test case base
# ---------------------------------------------------------------------------

class DuetTestCase(unittest.IsolatedAsyncioTestCase):
    """Base class: tracks clients and checks that the server survived each test."""

    server = None  # set by subclasses (usually in setUpClass)

    async def asyncSetUp(self):
        self._clients = []
        # Starting processes and TLS handshakes block briefly; that is fine
        # here and asyncio's debug-mode warnings about it are only noise.
        asyncio.get_running_loop().slow_callback_duration = 30

    async def asyncTearDown(self):
        for c in self._clients:
            await c.close()
        srv = self.current_server()
        if srv is not None and srv.proc is not None and srv.returncode is None:
            srv.assert_alive()

    def current_server(self):
        return self.server

    async def connect(self, name='', server=None, **kwargs):
        c = await Client.connect(server or self.current_server(), name=name, **kwargs)
        self._clients.append(c)
        return c

    # ---- assertions shared by the suites ----

    def assertMessage(self, got, expected, msg=None):
        self.assertEqual(got, expected, msg)

    def assertError(self, got, code, msg=None):
        """Assert got is exactly {"error":{"code":code,"message":<non-empty text>}}."""
        ctx = (msg + ': ') if msg else ''
        self.assertIsInstance(got, dict, ctx + 'not an object: %r' % (got,))
        self.assertEqual(list(got.keys()), ['error'], ctx + 'expected an error, got %r' % (got,))
        err = got['error']
        self.assertIsInstance(err, dict, ctx + 'error is not an object: %r' % (got,))
        self.assertEqual(set(err.keys()), {'code', 'message'}, ctx + 'error members: %r' % (got,))
        if isinstance(code, (set, frozenset, tuple, list)):
            self.assertIn(err['code'], code, ctx + 'unexpected error code in %r' % (got,))
        else:
            self.assertEqual(err['code'], code, ctx + 'unexpected error code in %r' % (got,))
        self.assertIsInstance(err['message'], str, ctx + 'message not a string: %r' % (got,))
        self.assertTrue(err['message'].strip(), ctx + 'empty error message in %r' % (got,))
        return err

    async def pair(self, local=None, remote=None, server=None):
        """Open a mutual pair; returns (waiting, newcomer) after checking
        that the waiting one got answer and the newcomer offer."""
        local = local or unique_id('a')
        remote = remote or unique_id('b')
        a = await self.connect(local, server=server)
        await a.open(local, remote)
        await a.synced()  # a waits: registered before b's open is read
        await a.expect_nothing(0.15)
        b = await self.connect(remote, server=server)
        await b.open(remote, local)
        self.assertEqual(await a.recv_json(), {'start': 'answer'}, 'waiting peer')
        self.assertEqual(await b.recv_json(), {'start': 'offer'}, 'newcomer')
        return a, b

    async def assert_server_still_pairs(self, server=None):
        """A fresh pair can still be made and relay a message."""
        a, b = await self.pair(server=server)
        sdp = '{"sdp":{"type":"offer","sdp":"v=0\\r\\n"},"remote":"%s"}' % a.name
        await b.send_text(sdp)
        self.assertEqual(await a.recv_text(), sdp)
        await a.close()
        await b.close()


class SharedServerTestCase(DuetTestCase):
    """One duetd for the whole test class, started with server_args. Its exit
    code on SIGTERM must be 0 (a sanitizer report at exit shows up there)."""

    server_args = ()

    @classmethod
    def setUpClass(cls):
        cls.server = Server(extra_args=list(cls.server_args), **cls.server_kwargs())
        cls.server.__enter__()

    @classmethod
    def server_kwargs(cls):
        """Further Server() arguments (web_root, ...) for a subclass to give."""
        return {}

    @classmethod
    def tearDownClass(cls):
        stop_checked(cls.server)


async def eventually(check, timeout=WAIT, what='the condition'):
    """Waits until check() (called in a thread: it may do blocking I/O)
    returns a true value, and returns it. For tests that must wait for duetd
    to have done something: an event, not a fixed sleep, so a busy machine
    makes the test slower, never wrong."""
    deadline = time.monotonic() + timeout
    while True:
        got = await asyncio.to_thread(check)
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError('%s did not happen within %.0f s' % (what, timeout))
        await asyncio.sleep(0.05)


def count_in_log(srv, text):
    """How many times text appears in duetd's log so far."""
    return srv.log().count(text)


def stop_checked(srv):
    """Stops srv with SIGTERM and removes its files; the exit code must be 0
    (a sanitizer report or a crash at exit shows up there)."""
    try:
        rc = srv.stop()
    finally:
        log = srv.log()
        srv.cleanup()
    if rc != 0:
        raise AssertionError('duetd exited with %s on SIGTERM (expected 0; a sanitizer '
                             'report or a crash).\nstderr:\n%s' % (rc, log[-20000:]))


# ---------------------------------------------------------------------------
# Raw HTTP(S)
# ---------------------------------------------------------------------------

def recv_or_eof(sock, size=65536, alert_is_eof=False):
    """sock.recv(), with b'' for every way a peer may end a connection: a
    close without TLS close_notify, a reset, and (alert_is_eof) a TLS alert."""
    try:
        return sock.recv(size)
    except ssl.SSLError as e:
        text = str(e).upper()
        if 'EOF' in text or 'UNEXPECTED' in text or (alert_is_eof and 'ALERT' in text):
            return b''
        raise
    except (ConnectionResetError, BrokenPipeError):
        return b''


class RawResponse:
    def __init__(self, status, reason, headers, body, raw_head):
        self.status = status
        self.reason = reason
        self.header_list = headers
        self.body = body
        self.raw_head = raw_head

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.header_list:
            if k.lower() == name:
                return v
        return default

    def headers_named(self, name):
        return [v for k, v in self.header_list if k.lower() == name.lower()]

    def __repr__(self):
        return '<HTTP %s %s, %d body bytes>' % (self.status, self.reason, len(self.body))


def raw_request(server, request, timeout=5.0, host=None, server_hostname='localhost',
                no_body=False):
    """Send exactly the given request bytes and parse the response.

    request may be bytes (sent unchanged) or a (method, target) tuple which is
    expanded into a minimal HTTP/1.1 request with Connection: close. The
    target is sent verbatim, so paths like /..%2f..%2fetc/passwd reach the
    server as written. no_body: the response must have no body (HEAD, 304);
    anything arriving after the header block is returned as the body.
    """
    if isinstance(request, tuple):
        method, target = request[0], request[1]
        extra = request[2] if len(request) > 2 else {}
        lines = ['%s %s HTTP/1.1' % (method, target), 'Host: localhost:%d' % server.port]
        for k, v in extra.items():
            lines.append('%s: %s' % (k, v))
        lines.append('Connection: close')
        request = ('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1')
        if method == 'HEAD':
            no_body = True
    host = host or server.host
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((host, server.port))
        if server.tls:
            ctx = ssl_context(server.ca_file)
            sock = ctx.wrap_socket(sock, server_hostname=server_hostname)
        sock.sendall(request)
        return _read_response(sock, timeout, no_body)
    finally:
        with contextlib.suppress(OSError):
            sock.close()


class ConnectionClosedEarly(AssertionError):
    """The server closed the connection before a complete response."""


class _Reader:
    def __init__(self, sock, timeout):
        self.sock = sock
        self.buf = b''
        self.eof = False
        self.deadline = time.monotonic() + timeout

    def fill(self, deadline=None):
        if self.eof:
            return False
        left = (deadline or self.deadline) - time.monotonic()
        if left <= 0:
            raise socket.timeout('HTTP response incomplete: %r' % self.buf[:500])
        self.sock.settimeout(left)
        data = recv_or_eof(self.sock)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_until(self, sep):
        while sep not in self.buf:
            if not self.fill():
                raise ConnectionClosedEarly('connection closed before %r; got %r'
                                            % (sep, self.buf[:500]))
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self.fill():
                raise ConnectionClosedEarly('connection closed after %d of %d body bytes'
                                            % (len(self.buf), n))
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_to_eof(self, deadline=None):
        try:
            while self.fill(deadline):
                pass
        except (socket.timeout, TimeoutError):
            if deadline is None:
                raise
        out, self.buf = self.buf, b''
        return out


def _read_response(sock, timeout, no_body):
    r = _Reader(sock, timeout)
    head = r.read_until(b'\r\n\r\n')
    text = head.decode('latin-1')
    lines = text.split('\r\n')
    m = re.match(r'HTTP/1\.[01] (\d{3}) ?(.*)$', lines[0])
    if not m:
        raise AssertionError('bad status line %r' % lines[0])
    status, reason = int(m.group(1)), m.group(2)
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        k, _, v = line.partition(':')
        headers.append((k.strip(), v.strip()))
    hdr = {k.lower(): v for k, v in headers}
    if no_body or status in (204, 304) or 100 <= status < 200:
        # Whatever arrives within a short grace period would be a body that
        # must not be there.
        body = r.read_to_eof(time.monotonic() + 0.5)
    elif 'chunked' in hdr.get('transfer-encoding', '').lower():
        body = b''
        while True:
            size_line = r.read_until(b'\r\n')
            size = int(size_line.split(b';')[0].strip(), 16)
            if size == 0:
                r.read_until(b'\r\n')
                break
            body += r.read_exact(size)
            r.read_exact(2)
    elif 'content-length' in hdr:
        body = r.read_exact(int(hdr['content-length']))
    else:
        body = r.read_to_eof()
    return RawResponse(status, reason, headers, body, head)
