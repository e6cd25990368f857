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

TURNSERVER = os.environ.get('TURNSERVER', '/usr/bin/turnserver')
UCLIENT = os.environ.get('TURNUTILS_UCLIENT', '/usr/bin/turnutils_uclient')
START_TIMEOUT = 10.0


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
                'allow-loopback-peers', 'no-cli', 'no-tls', 'no-dtls', 'no-software-attribute',
                'log-file=stdout', 'simple-log', 'verbose',
                'pidfile=%s' % os.path.join(self.dir, 'turnserver.pid'),
                'userdb=%s' % os.path.join(self.dir, 'turndb'),
            ] + self.extra_config) + '\n')
        self.proc = subprocess.Popen([TURNSERVER, '-c', conf], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        threading.Thread(target=self._drain, daemon=True).start()
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

    def _drain(self):
        for line in self.proc.stdout:
            with self._lock:
                self._log.append(line.decode(errors='replace'))

    def log(self):
        with self._lock:
            return ''.join(self._log)

    def uclient(self, username, password, timeout=30):
        """coturn's own test client: two allocations on this server send one
        message to each other through their relays (-y), no RTCP (-c).
        Returns the CompletedProcess; exit code 0 only when the allocations
        were made and the message came back."""
        cmd = [UCLIENT, '-y', '-c', '-n', '1', '-u', username, '-w', password, '-p', str(self.port), '127.0.0.1']
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout, errors='replace')
