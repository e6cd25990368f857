"""A coturn of the test's own (issue 16): Debian's turnserver on 127.0.0.1
with the REST-API secret duetd reads through --turn-secret.

    with Coturn(secret='...') as turn:      # turn.port, turn.log()
        ...

Its config file lives in a fresh temporary folder; it runs in the
foreground and is stopped by the PID we started, never by name. Loopback
peers are allowed because both ends of a test's relay are 127.0.0.1; a real
deployment must not allow them (see the README's recipe).
"""

import os
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from duet_harness import wait_for_match

TURNSERVER = os.environ.get('TURNSERVER', '/usr/bin/turnserver')
UCLIENT = os.environ.get('TURNUTILS_UCLIENT', '/usr/bin/turnutils_uclient')
START_TIMEOUT = 30.0


def require_coturn():
    """Skips the calling test (class) when coturn is not installed."""
    for program in (TURNSERVER, UCLIENT):
        if not (os.path.isfile(program) and os.access(program, os.X_OK)):
            raise unittest.SkipTest('%s is missing: apt-get install coturn '
                                    '(tools/install-deps --tests installs it)' % program)


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def stun_answers(port, timeout=0.5):
    """True when a STUN Binding request (RFC 5389: type 1, the magic cookie,
    a random transaction id) to 127.0.0.1:port gets any answer."""
    request = b'\x00\x01\x00\x00\x21\x12\xa4\x42' + os.urandom(12)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(request, ('127.0.0.1', port))
        try:
            s.recvfrom(2048)
            return True
        except OSError:
            return False


class Coturn:
    def __init__(self, secret, extra_config=()):
        self.secret = secret
        self.extra_config = list(extra_config)
        self.dir = tempfile.mkdtemp(prefix='duet-coturn-')
        self.port = free_udp_port()
        self.proc = None
        self._log = []
        self._lock = threading.Lock()

    def __enter__(self):
        conf = os.path.join(self.dir, 'turnserver.conf')
        with open(conf, 'w') as f:
            f.write('\n'.join([
                'listening-ip=127.0.0.1', 'relay-ip=127.0.0.1', 'listening-port=%d' % self.port,
                'min-port=49152', 'max-port=65535',
                'use-auth-secret', 'static-auth-secret=%s' % self.secret, 'realm=duet.test',
                # no-tcp: the tests use TURN over UDP only, and the port was
                # found free for UDP; a TCP listener on it could collide with
                # a connection of another test (coturn then retries the bind
                # forever and answers nothing).
                'allow-loopback-peers', 'no-cli', 'no-tcp', 'no-tls', 'no-dtls', 'no-software-attribute',
                'log-file=stdout', 'simple-log', 'verbose',
                'pidfile=%s' % os.path.join(self.dir, 'turnserver.pid'),
                'userdb=%s' % os.path.join(self.dir, 'turndb'),
            ] + self.extra_config) + '\n')
        self.proc = subprocess.Popen([TURNSERVER, '-c', conf], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not stun_answers(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise AssertionError('turnserver did not answer STUN within %.0f s (exit %r):\n%s'
                                     % (START_TIMEOUT, self.proc.returncode, self.log()))
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout and not self.proc.stdout.closed:
            self._reader.join(5)
            self.proc.stdout.close()

    def _drain(self):
        for line in self.proc.stdout:
            with self._lock:
                self._log.append(line.decode(errors='replace'))

    def log(self):
        with self._lock:
            return ''.join(self._log)

    def wait_for_log(self, pattern, timeout=20.0):
        """Waits until coturn's log has a match of the regex and returns it:
        coturn writes a line when it is done with a packet, and our reader
        thread gets it some time after the client got its answer."""
        return wait_for_match(self.log, pattern, timeout, 'coturn')

    def uclient(self, username, password, timeout=30):
        """coturn's own test client: two allocations on this server send one
        message to each other through their relays (-y), no RTCP (-c).
        Returns the CompletedProcess; exit code 0 only when the allocations
        were made and the message came back."""
        cmd = [UCLIENT, '-y', '-c', '-n', '1', '-u', username, '-w', password, '-p', str(self.port), '127.0.0.1']
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout, errors='replace')


class TurnAllocation:
    """The smallest TURN client (RFC 5766 over UDP, long-term credentials):
    Allocate, then Refresh, each answered with its response class and error
    code, for asking coturn what it does with a username that expired after
    the allocation was made.

    What the client saw is counted, so a test asserts on that rather than on
    coturn's log (which may not have been read yet): stale_nonces is the
    number of 438 (Stale Nonce) answers it got and retried, nonce_time the
    time.time() at which it got its current nonce."""

    MAGIC = 0x2112A442

    def __init__(self, port, username, password):
        import hashlib
        self.port = port
        self.username = username.encode()
        self.password = password.encode()
        self.hashlib = hashlib
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # Generous: coturn answers in milliseconds, but a loaded CI machine
        # (an ASan pass next to other builds) may stall it for seconds.
        self.sock.settimeout(10.0)
        self.realm = b''
        self.nonce = b''
        self.nonce_time = None
        self.stale_nonces = 0

    def close(self):
        self.sock.close()

    @staticmethod
    def _attr(kind, value):
        pad = (4 - len(value) % 4) % 4
        return kind.to_bytes(2, 'big') + len(value).to_bytes(2, 'big') + value + b'\0' * pad

    def _request(self, method, attrs):
        """Sends method with attrs (authenticated once realm and nonce are
        known) and returns (class, error code or 0, attributes)."""
        import hmac as hmac_mod
        import struct
        tid = os.urandom(12)
        body = b''.join(attrs)
        if self.nonce:
            body += self._attr(0x0006, self.username) + self._attr(0x0014, self.realm) + self._attr(0x0015, self.nonce)
            key = self.hashlib.md5(self.username + b':' + self.realm + b':' + self.password).digest()
            head = struct.pack('!HHI', method, len(body) + 24, self.MAGIC) + tid
            mac = hmac_mod.new(key, head + body, self.hashlib.sha1).digest()
            body += self._attr(0x0008, mac)
        self.sock.sendto(struct.pack('!HHI', method, len(body), self.MAGIC) + tid + body, ('127.0.0.1', self.port))
        while True:
            data, _ = self.sock.recvfrom(4096)
            if data[8:20] == tid:
                break
        kind = struct.unpack('!H', data[:2])[0]
        got, i = {}, 20
        while i + 4 <= len(data):
            t, n = struct.unpack('!HH', data[i:i + 4])
            got[t] = data[i + 4:i + 4 + n]
            i += 4 + n + (4 - n % 4) % 4
        code = 0
        if 0x0009 in got:  # ERROR-CODE
            code = got[0x0009][2] * 100 + got[0x0009][3]
        return ('error' if kind & 0x0110 == 0x0110 else 'success'), code, got

    def allocate(self):
        """('success', 0) or ('error', code); answers a first 401 with the
        realm and nonce it carries, as every TURN client does."""
        transport = self._attr(0x0019, b'\x11\0\0\0')  # REQUESTED-TRANSPORT: UDP
        cls, code, got = self._request(0x0003, [transport])
        if code == 401 and not self.nonce:
            self.realm, self.nonce = got[0x0014], got[0x0015]
            self.nonce_time = time.time()
            cls, code, got = self._request(0x0003, [transport])
        return cls, code

    def refresh(self, lifetime=600):
        cls, code, got = self._request(0x0004, [self._attr(0x000D, lifetime.to_bytes(4, 'big'))])
        if code == 438:  # stale nonce: take the new one and ask again
            self.stale_nonces += 1
            self.nonce = got[0x0015]
            self.nonce_time = time.time()
            cls, code, got = self._request(0x0004, [self._attr(0x000D, lifetime.to_bytes(4, 'big'))])
        return cls, code
