#!/usr/bin/env python3
"""What duetd costs at its open-files limit: starts duetd from a shell with
`ulimit -n LIMIT`, opens CLIENTS TCP connections that never send a byte, and
prints duetd's CPU time and the log it writes over SECONDS. Prints only; the
test that checks this is tests/integration/test_floods.py.

  tests/bench/fd_flood.py build/core/duetd --limit 256 --clients 300 --seconds 5

CLIENTS is bounded by this process's own open-files limit.
"""
import argparse
import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time


def cpu_seconds(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('duetd')
    ap.add_argument('--limit', type=int, default=256, help='ulimit -n for duetd (default 256)')
    ap.add_argument('--clients', type=int, default=300, help='silent TCP connections (default 300)')
    ap.add_argument('--seconds', type=float, default=5.0, help='how long to measure (default 5)')
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix='duet-fdflood-')
    os.makedirs(os.path.join(tmp, 'web'))
    log_path = os.path.join(tmp, 'log')
    with open(log_path, 'wb') as log:
        proc = subprocess.Popen(
            ['sh', '-c', 'ulimit -n %d && exec "$@"' % args.limit, 'sh', args.duetd, '--address', '127.0.0.1',
             '--port', '0', '--state-dir', os.path.join(tmp, 'state'), '--web-root', os.path.join(tmp, 'web'),
             '--http-timeout', '600'],
            stdin=subprocess.DEVNULL, stderr=log)
    socks = []
    try:
        port = None
        deadline = time.monotonic() + 15
        while port is None and time.monotonic() < deadline:
            time.sleep(0.1)
            with open(log_path, 'rb') as f:
                m = re.search(rb'listening on https://[^ ]*:(\d+)/', f.read())
            port = int(m.group(1)) if m else None
        if port is None:
            raise SystemExit('duetd did not start:\n' + open(log_path, errors='replace').read())
        start_size = os.path.getsize(log_path)
        for _ in range(args.clients):
            s = socket.socket()
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(('127.0.0.1', port))
            socks.append(s)
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(args.seconds)
        cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
        with open(log_path, 'rb') as f:
            f.seek(start_size)
            data = f.read()
        print('ulimit -n %d, %d silent clients, %.1f s: duetd CPU %.2f s (%.0f%% of one core), log %d lines, '
              '%d bytes' % (args.limit, args.clients, t1 - t0, cpu1 - cpu0, 100 * (cpu1 - cpu0) / (t1 - t0),
                            data.count(b'\n'), len(data)))
        for line in data.decode(errors='replace').splitlines()[:3]:
            print('  ' + line)
    finally:
        for s in socks:
            s.close()
        proc.terminate()
        proc.wait(timeout=15)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
