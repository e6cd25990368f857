"""Redis with Sentinel for the failover tests (issue 26): one master, N
replicas and M sentinels (Debian's redis-sentinel), all on loopback TCP.

    with SentinelSet() as s:                       # 1 master, 2 replicas, 3 sentinels
        with Cluster(2, s) as cluster:             # duetd --cluster redis-sentinel://.../duetmaster
            old = s.master()                       # the RedisServer the sentinels name now
            s.kill_master()                        # kill -9 of it
            new = s.wait_new_master(old)           # once the sentinels promoted a replica

Every process is one we started, stopped by its PID. The sentinels watch the
master with down-after-milliseconds DOWN_AFTER_MS, so a kill is noticed
within about two seconds and a failover takes a few more.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from duet_harness import STOP_TIMEOUT
from redis_harness import REDIS_CLI, RedisServer, free_tcp_port, require_redis

REDIS_SENTINEL = os.environ.get('REDIS_SENTINEL', '/usr/bin/redis-sentinel')
MASTER_NAME = 'duetmaster'
# A sentinel on a loaded 2-core machine may miss a second of pings from a
# healthy Redis and fail it over again: 2 s keeps that rare.
DOWN_AFTER_MS = 2000
FAILOVER_TIMEOUT_MS = 6000
READY_TIMEOUT = 30.0


def require_sentinel():
    """Skips the calling test when redis-sentinel or redis-cli is missing."""
    require_redis()
    if not (os.path.isfile(REDIS_SENTINEL) and os.access(REDIS_SENTINEL, os.X_OK)):
        raise unittest.SkipTest('%s is missing: apt-get install redis-sentinel '
                                '(tools/install-deps --tests installs it)' % REDIS_SENTINEL)
    if not REDIS_CLI:
        raise unittest.SkipTest('redis-cli is not installed (package redis-tools)')


def wait_for(check, what, timeout=READY_TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError('%s did not happen within %.0f s' % (what, timeout))
        time.sleep(0.05)


class Sentinel:
    """One redis-sentinel process of ours on a free loopback port."""

    def __init__(self, folder, master_port, quorum, password=None, master_password=None):
        self.dir = folder
        self.port = free_tcp_port()
        self.password = password
        self.config = os.path.join(folder, 'sentinel.conf')
        self.logpath = os.path.join(folder, 'sentinel.log')
        lines = ['port %d' % self.port, 'bind 127.0.0.1', 'daemonize no', 'dir ' + folder,
                 'logfile ' + self.logpath,
                 'sentinel monitor %s 127.0.0.1 %d %d' % (MASTER_NAME, master_port, quorum),
                 'sentinel down-after-milliseconds %s %d' % (MASTER_NAME, DOWN_AFTER_MS),
                 'sentinel failover-timeout %s %d' % (MASTER_NAME, FAILOVER_TIMEOUT_MS),
                 'sentinel parallel-syncs %s 2' % MASTER_NAME]
        if password:
            lines.append('requirepass ' + password)
            # Sentinels with a password use it among themselves too.
            lines.append('sentinel sentinel-pass ' + password)
        if master_password:
            lines.append('sentinel auth-pass %s %s' % (MASTER_NAME, master_password))
        with open(self.config, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([REDIS_SENTINEL, self.config], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: self.cli('PING', check=False).strip() == 'PONG' or self.proc.poll() is not None,
                 'redis-sentinel on port %d answering PING' % self.port)
        if self.proc.poll() is not None:
            raise AssertionError('redis-sentinel exited with %s.\nlog:\n%s' % (self.proc.returncode, self.log()))
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cli(self, *args, check=True):
        cmd = [REDIS_CLI, '-h', '127.0.0.1', '-p', str(self.port)]
        if self.password:
            cmd += ['--no-auth-warning', '-a', self.password]
        p = subprocess.run(cmd + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=5, errors='replace')
        if check and p.returncode != 0:
            raise AssertionError('redis-cli -p %d %s failed: %s' % (self.port, args, p.stderr))
        return p.stdout

    def master_port(self):
        """The master's port this sentinel names now (None if it names none)."""
        out = self.cli('SENTINEL', 'get-master-addr-by-name', MASTER_NAME, check=False).split()
        return int(out[1]) if len(out) == 2 and out[1].isdigit() else None

    def log(self):
        try:
            with open(self.logpath, errors='replace') as f:
                return f.read()
        except OSError:
            return ''


class SentinelSet:
    """A master, replicas and sentinels that watch them (see the module's
    docstring). password: the data instances' requirepass (and masterauth);
    sentinel_password: the sentinels' own requirepass."""

    def __init__(self, replicas=2, sentinels=3, password=None, sentinel_password=None):
        require_sentinel()
        self.n_replicas = replicas
        self.n_sentinels = sentinels
        self.password = password
        self.sentinel_password = sentinel_password
        # Sentinels fsync their config at every change; on a disk busy with
        # other work that can stall them over 2 s, and a stalled sentinel
        # enters TILT mode and does nothing for 30 s. Memory does not stall.
        shm = '/dev/shm' if os.path.isdir('/dev/shm') and os.access('/dev/shm', os.W_OK) else None
        self.dir = tempfile.mkdtemp(prefix='duet-sentinel-', dir=shm)
        self.instances = []  # the RedisServers: the first master, then the replicas
        self.sentinels = []

    # ---- what duetd is given --------------------------------------------------

    @property
    def url(self):
        return 'redis-sentinel://%s/%s' % (','.join('127.0.0.1:%d' % s.port for s in self.sentinels),
                                           MASTER_NAME)

    def password_files(self):
        """(--cluster-password-file, --cluster-sentinel-password-file) paths, each None without a password."""
        def write(name, text):
            if not text:
                return None
            path = os.path.join(self.dir, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, 'w') as f:
                f.write(text + '\n')
            return path
        return write('redis-password', self.password), write('sentinel-password', self.sentinel_password)

    # ---- lifecycle --------------------------------------------------------------

    def start(self):
        # Redis 7 waits 5 s (repl-diskless-sync-delay) for more replicas before
        # a first sync: a replica promoted meanwhile would be empty.
        auth = ['--masterauth', self.password] if self.password else []
        auth += ['--repl-diskless-sync-delay', '0']
        master = RedisServer(tcp=True, password=self.password, extra_args=auth).start()
        self.instances.append(master)
        for _ in range(self.n_replicas):
            self.instances.append(RedisServer(tcp=True, password=self.password,
                                              extra_args=auth + ['--replicaof', '127.0.0.1', str(master.port)]).start())
        wait_for(lambda: all('master_link_status:up' in r.cli('INFO', 'replication') for r in self.instances[1:]),
                 '%d replicas in sync with the master' % self.n_replicas)
        quorum = self.n_sentinels // 2 + 1
        for i in range(self.n_sentinels):
            folder = os.path.join(self.dir, 'sentinel-%d' % i)
            os.mkdir(folder)
            self.sentinels.append(Sentinel(folder, master.port, quorum, self.sentinel_password,
                                           self.password).start())
        self.wait_settled()
        return self

    def wait_settled(self, timeout=READY_TIMEOUT):
        """Until every sentinel names the same master and knows every replica
        and the other sentinels (a failover needs that)."""
        def settled():
            ports = {s.master_port() for s in self.sentinels if s.proc.poll() is None}
            if len(ports) != 1 or None in ports:
                return False
            for s in self.sentinels:
                if s.proc.poll() is not None:
                    continue
                replicas = s.cli('SENTINEL', 'replicas', MASTER_NAME, check=False).count('\nflags\n')
                others = s.cli('SENTINEL', 'sentinels', MASTER_NAME, check=False).count('\nflags\n')
                if replicas < self.n_replicas or others < len(self.sentinels) - 1:
                    return False
            return True
        wait_for(settled, 'the sentinels agreeing on the master and seeing every replica and sentinel', timeout)

    def cleanup(self):
        for s in self.sentinels:
            s.stop(signal.SIGKILL)
        for r in self.instances:
            r.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc):
        self.cleanup()
        return False

    # ---- the master, and moving it ----------------------------------------------

    def instance(self, port):
        return next(r for r in self.instances if r.port == port)

    def master(self):
        """The instance the first live sentinel names as master."""
        s = next(s for s in self.sentinels if s.proc.poll() is None)
        return self.instance(wait_for(s.master_port, 'a sentinel naming the master'))

    def kill_master(self):
        """kill -9 of the master; returns it (dead)."""
        old = self.master()
        old.kill()
        return old

    def failover(self):
        """SENTINEL FAILOVER: a promotion the sentinels are told to do now."""
        s = next(s for s in self.sentinels if s.proc.poll() is None)
        out = s.cli('SENTINEL', 'FAILOVER', MASTER_NAME).strip()
        if out != 'OK':
            raise AssertionError('SENTINEL FAILOVER answered %r' % out)

    def wait_new_master(self, old, timeout=READY_TIMEOUT):
        """Until every live sentinel names a master other than old, and it
        says ROLE master; returns it."""
        def moved():
            ports = {s.master_port() for s in self.sentinels if s.proc.poll() is None}
            if len(ports) != 1 or old.port in ports or None in ports:
                return None
            new = self.instance(ports.pop())
            return new if self.role(new) == 'master' else None
        try:
            return wait_for(moved, 'the sentinels promoting a replica', timeout)
        except AssertionError as e:
            raise AssertionError('%s\n%s' % (e, self.describe())) from None

    def describe(self):
        """What each sentinel names and each instance says it is, then the sentinels' logs."""
        lines = ['sentinel %d (port %d) names %s' % (i, s.port, s.master_port() if s.proc.poll() is None else 'dead')
                 for i, s in enumerate(self.sentinels)]
        for r in self.instances:
            role = 'dead'
            if r.alive():
                with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                    role = r.cli('ROLE').replace('\n', ' ')[:80]
            lines.append('instance port %d: %s' % (r.port, role))
        return '\n'.join(lines) + '\n' + self.logs()

    @staticmethod
    def role(instance):
        """What instance's ROLE says it is ('master', 'slave'), or None when
        it does not answer (a sentinel may be closing every client)."""
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            return instance.cli('ROLE').split('\n', 1)[0].strip()
        return None

    def duet_clients(self, instance):
        """The names of duetd's links connected to instance (CLIENT LIST's
        name=duet-...): none may be on a replica."""
        for attempt in range(5):  # a sentinel reconfiguring it closes every client, ours too
            try:
                out = instance.cli('CLIENT', 'LIST')
                break
            except (AssertionError, subprocess.TimeoutExpired):
                if attempt == 4:
                    raise
                time.sleep(0.2)
        return [field[len('name=duet-'):] for line in out.splitlines() for field in line.split()
                if field.startswith('name=duet-')]

    def logs(self):
        return '\n'.join('--- sentinel %d (port %d)\n%s' % (i, s.port, s.log()[-4000:])
                         for i, s in enumerate(self.sentinels))
