#!/bin/sh
# System calls duetd makes per relayed message at 5,000 messages/s offered:
# strace -c on duetd while duet-loadgen relays (50 pairs, 3 s). strace slows
# duetd, so fewer messages get through than offered; divide the counts by
# the "delivered" figure printed first.
#   tests/bench/syscalls_per_message.sh DUETD LOADGEN
# (LOADGEN: build/bench/duet-loadgen, made by tests/bench/run.)
set -eu
d=$1; loadgen=$2; tmp=$(mktemp -d); mkdir -p $tmp/web
$d --address 127.0.0.1 --port 0 --state-dir $tmp/state --web-root $tmp/web --max-connections 50000 --max-connections-per-ip 50000 --max-messages-per-second 100000 2> $tmp/log &
pid=$!
sleep 1.5
port=$(grep -o 'https://127.0.0.1:[0-9]*' $tmp/log | cut -d: -f3)
strace -c -f -p $pid -o $tmp/strace 2>/dev/null &
spid=$!
sleep 0.5
"$loadgen" --port $port --ca $tmp/state/dev-cert.pem --pid $pid --phases connect,relay --conns 200 --relay-pairs 50 --rates 5000 --relay-secs 3 > $tmp/out.json 2>$tmp/lg.log
kill -INT $spid; sleep 0.5
kill $pid; wait $pid 2>/dev/null || true
grep -o "\"delivered\":[0-9]*" $tmp/out.json | head -1
head -20 $tmp/strace
rm -rf "$tmp"
