"""Relayed frames leave duetd in order, whole and once, whether they are
written at once or wait behind a client that reads slowly: the write path's
promise, checked frame by frame on the raw socket of a slow reader.
Run: DUETD=build/core/duetd /usr/bin/python3 tests/integration/test_relay_order.py
"""

import asyncio
import json
import random
import struct
import time
import unittest

from duet_harness import DuetTestCase, Server, eventually, unique_id
from test_metrics import scrape
from test_limits import raw_websocket, ws_text_frame

# Payload sizes that take every WebSocket length encoding (7-bit, 16-bit,
# 64-bit) and straddle one TLS record (16 KiB), the size of a write batch.
SIZES = [20, 125, 126, 1000, 16000, 16384, 16500, 40000, 65535, 65536, 90000]
COUNT = 330


class FrameReader:
    """Reads server frames (unmasked) from a blocking TLS socket, slowly."""

    def __init__(self, sock, chunk, pause):
        self.sock, self.chunk, self.pause = sock, chunk, pause
        self.buf = b''

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            if time.monotonic() > deadline:
                raise AssertionError('timed out with %d of %d bytes' % (len(self.buf), n))
            data = self.sock.recv(self.chunk)
            if not data:
                raise AssertionError('the server closed the connection')
            self.buf += data
            if self.pause:
                time.sleep(self.pause * random.random())

    def frame(self, deadline):
        """Returns (fin, opcode, payload) of the next frame."""
        self._fill(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        if b1 & 0x80:
            raise AssertionError('a server frame is masked')
        n, head = b1 & 0x7f, 2
        if n == 126:
            self._fill(4, deadline)
            n, head = struct.unpack('!H', self.buf[2:4])[0], 4
        elif n == 127:
            self._fill(10, deadline)
            n, head = struct.unpack('!Q', self.buf[2:10])[0], 10
        self._fill(head + n, deadline)
        payload = self.buf[head:head + n]
        self.buf = self.buf[head + n:]
        return bool(b0 & 0x80), b0 & 0x0f, payload


def message(seq, remote):
    size = SIZES[seq % len(SIZES)]
    text = json.dumps({'ice': {'candidate': '%d:' % seq, 'sdpMid': '0'}, 'remote': remote})
    # Pad inside the candidate so the whole message has the size wanted.
    pad = max(0, size - len(text))
    return json.dumps({'ice': {'candidate': '%d:%s' % (seq, 'x' * pad), 'sdpMid': '0'}, 'remote': remote})


class RelayOrderTest(DuetTestCase):

    @classmethod
    def setUpClass(cls):
        cls.server = Server(extra_args=['--max-message-bytes', '131072', '--max-queued-bytes', '67108864',
                                        '--max-queued-bytes-total', '134217728',
                                        '--max-messages-per-second', '100000'])
        cls.server.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)

    async def relay_to_reader(self, chunk, pause):
        slow_id, fast_id = unique_id('slow'), unique_id('fast')
        slow = await asyncio.to_thread(raw_websocket, self.server, 4096, 30.0)
        self.addCleanup(slow.close)
        before = scrape(self.server).value('duet_messages_received_total')
        slow.sendall(ws_text_frame(json.dumps({'open': {'local': slow_id, 'remote': fast_id}})))
        await eventually(lambda: scrape(self.server).value('duet_messages_received_total') > before,
                         what="the slow reader's open")
        fast = await self.connect(fast_id)
        await fast.open(fast_id, slow_id)
        self.assertEqual(await fast.recv_json(), {'start': 'offer'})
        reader = FrameReader(slow, chunk, pause)
        deadline = time.monotonic() + 60
        fin, opcode, payload = await asyncio.to_thread(reader.frame, deadline)
        self.assertEqual(json.loads(payload), {'start': 'answer'})
        sent = [message(i, slow_id) for i in range(COUNT)]

        async def send_all():
            for i, text in enumerate(sent):
                await fast.send_text(text)
                if i % 7 == 0:
                    await asyncio.sleep(0)  # some arrive one per loop turn, some in bursts

        sender = asyncio.create_task(send_all())
        for i in range(COUNT):
            fin, opcode, payload = await asyncio.to_thread(reader.frame, deadline)
            self.assertTrue(fin, 'message %d came split into fragments' % i)
            self.assertEqual(opcode, 1, 'message %d: opcode %d, not text' % (i, opcode))
            got = payload.decode('utf-8')
            if got != sent[i]:
                seq = got.split('"candidate": "', 1)[-1].split(':', 1)[0]
                self.fail('frame %d is not message %d (it starts %r, sequence %s): reordered, lost or '
                          'changed' % (i, i, got[:60], seq))
        await sender
        # Nothing more: no message came twice.
        slow.settimeout(0.5)
        with self.assertRaises(Exception):
            await asyncio.to_thread(reader.frame, time.monotonic() + 0.5)

    async def test_frames_reach_a_slow_reader_whole_in_order_and_once(self):
        await self.relay_to_reader(chunk=4096, pause=0.002)

    async def test_frames_reach_a_reader_that_keeps_up_whole_in_order_and_once(self):
        await self.relay_to_reader(chunk=1 << 20, pause=0)


if __name__ == '__main__':
    unittest.main()
