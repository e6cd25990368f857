"""Helpers for the hostile-input suite: a raw WebSocket client that can send
any frame (bad lengths, unmasked, fragmented control frames, ...), raw
TLS/TCP byte exchanges, and the shared server fixture.

Everything else comes from tests/integration/duet_harness.py.
"""

import base64
import contextlib
import os
import socket
import ssl
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'integration'))

from duet_harness import SharedServerTestCase, recv_or_eof, ssl_context  # noqa: E402

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

# How much longer than usual everything may take under ASan+UBSan.
SLOW = float(os.environ.get('DUET_HOSTILE_SLOW', '3' if 'asan' in os.environ.get('DUETD', '') else '1'))


# One duetd per test class; its exit code on SIGTERM must be 0.
SharedServerCase = SharedServerTestCase


def tls_socket(server, timeout=5.0, alpn=('http/1.1',)):
    raw = socket.create_connection((server.host, server.port), timeout=timeout)
    if not server.tls:
        return raw
    return ssl_context(server.ca_file, alpn=alpn).wrap_socket(raw, server_hostname='localhost')


def read_all(sock, timeout=3.0, limit=1 << 20):
    """Everything the peer sends until it closes or timeout passes.
    Returns (bytes, closed_by_peer)."""
    data = b''
    deadline = time.monotonic() + timeout
    while len(data) < limit:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, False
        sock.settimeout(left)
        try:
            chunk = recv_or_eof(sock, alert_is_eof=True)
        except (socket.timeout, TimeoutError):
            return data, False
        if not chunk:
            return data, True
        data += chunk
    return data, False


def statuses(data):
    """The status codes of every HTTP response head found in data."""
    out = []
    i = 0
    while True:
        j = data.find(b'HTTP/1.', i)
        if j < 0:
            return out
        line = data[j:data.find(b'\r\n', j) if data.find(b'\r\n', j) >= 0 else len(data)]
        parts = line.split(b' ')
        if len(parts) >= 2 and parts[1][:3].isdigit():
            out.append(int(parts[1][:3]))
        i = j + 7


class RawWs:
    """A WebSocket spoken by hand over TLS (or TCP), frame by frame."""

    def __init__(self, server, path='/', headers=None, timeout=5.0):
        self.sock = tls_socket(server, timeout)
        self.buf = b''
        key = base64.b64encode(os.urandom(16)).decode()
        lines = ['GET %s HTTP/1.1' % path, 'Host: localhost:%d' % server.port,
                 'Upgrade: websocket', 'Connection: Upgrade',
                 'Sec-WebSocket-Key: %s' % key, 'Sec-WebSocket-Version: 13']
        # No Origin, like the harness's clients (non-browser clients send none).
        for k, v in (headers or {}).items():
            lines.append('%s: %s' % (k, v))
        self.sock.sendall(('\r\n'.join(lines) + '\r\n\r\n').encode())
        head = self._read_until(b'\r\n\r\n', timeout)
        self.status = int(head.split(b' ')[1])
        if self.status != 101:
            raise AssertionError('WebSocket upgrade refused: %r' % head[:300])

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        chunk = recv_or_eof(self.sock)
        if not chunk:
            raise EOFError('connection closed')
        self.buf += chunk

    def _read_until(self, sep, timeout):
        deadline = time.monotonic() + timeout
        while sep not in self.buf:
            self._fill(max(0.01, deadline - time.monotonic()))
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _read_exact(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout('frame incomplete')
            self._fill(left)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    @staticmethod
    def frame(opcode, payload=b'', fin=True, mask=True, rsv=0, length=None):
        """One frame; length overrides the announced payload length."""
        if isinstance(payload, str):
            payload = payload.encode()
        n = len(payload) if length is None else length
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        m = 0x80 if mask else 0
        if n < 126:
            head = struct.pack('!BB', b0, m | n)
        elif n < 65536:
            head = struct.pack('!BBH', b0, m | 126, n)
        else:
            head = struct.pack('!BBQ', b0, m | 127, n)
        if mask:
            key = os.urandom(4)
            body = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
            return head + key + body
        return head + payload

    def send(self, opcode, payload=b'', **kw):
        self.sock.sendall(self.frame(opcode, payload, **kw))

    def send_raw(self, data):
        self.sock.sendall(data)

    def recv_frame(self, timeout=3.0):
        """(opcode, payload) of the next frame from the server; EOFError on close."""
        deadline = time.monotonic() + timeout
        b0, b1 = self._read_exact(2, deadline)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack('!H', self._read_exact(2, deadline))[0]
        elif n == 127:
            n = struct.unpack('!Q', self._read_exact(8, deadline))[0]
        if b1 & 0x80:
            raise AssertionError('the server sent a masked frame')
        return b0 & 0x0F, self._read_exact(n, deadline)

    def recv_text(self, timeout=3.0):
        """The next text message, answering pings; raises Closed-like EOFError
        carrying the close code on a close frame."""
        while True:
            op, payload = self.recv_frame(timeout)
            if op == OP_TEXT:
                return payload.decode('utf-8')
            if op == OP_CLOSE:
                code = struct.unpack('!H', payload[:2])[0] if len(payload) >= 2 else None
                raise WsClosed(code, payload[2:])
            if op == OP_PING:
                self.send(OP_PONG, payload)

    def outcome(self, timeout=3.0):
        """Reads until the server closes or timeout: returns (texts, close_code
        or None, closed). close_code is None when the TCP connection ended
        without a close frame."""
        texts = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return texts, None, False
            try:
                op, payload = self.recv_frame(left)
            except EOFError:
                return texts, None, True
            except (socket.timeout, TimeoutError):
                return texts, None, False
            except (ssl.SSLError, OSError):
                return texts, None, True
            if op == OP_TEXT:
                texts.append(payload.decode('utf-8', errors='replace'))
            elif op == OP_CLOSE:
                code = struct.unpack('!H', payload[:2])[0] if len(payload) >= 2 else None
                return texts, code, True
            elif op == OP_PING:
                with contextlib.suppress(OSError):
                    self.send(OP_PONG, payload)

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()


class WsClosed(Exception):
    def __init__(self, code, reason):
        super().__init__('closed with %s %r' % (code, reason))
        self.code = code
        self.reason = reason
