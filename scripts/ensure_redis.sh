#!/usr/bin/env bash
# Make sure a Redis server (the Celery broker and result backend of deploy/celery) answers on 127.0.0.1.
# Idempotent: run it as often as you like.
#
#   1. installs Debian's `redis-server` if it is missing (needs root)
#   2. starts one bound to 127.0.0.1 on MMP_REDIS_PORT (default 6379), no persistence, as a daemon
#   3. waits until it answers PING
#
# Not root and nothing answers: nothing can be installed or started (tests marked celery skip).
# MMP_REDIS_DIR (default /tmp/mmp-redis-$PORT) holds its pid file and log.
set -euo pipefail

HOST=127.0.0.1
PORT=${MMP_REDIS_PORT:-6379}
DIR=${MMP_REDIS_DIR:-/tmp/mmp-redis-$PORT}
WAIT_S=${MMP_REDIS_WAIT_S:-30}

say() { echo "redis: $*"; }
ready() { command -v redis-cli >/dev/null && [[ $(redis-cli -h "$HOST" -p "$PORT" ping 2>/dev/null) == PONG ]]; }

if ready; then
    say "already answering on $HOST:$PORT"
    exit 0
fi

# 1. install
if ! command -v redis-server >/dev/null; then
    if [[ $(id -u) -ne 0 ]]; then
        say "not root and redis-server is not installed: cannot start Redis (tests marked celery skip)" >&2
        exit 0
    fi
    say "installing Debian's redis-server package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq redis-server >/dev/null
    say "installed"
fi

# 2. start: loopback only, no RDB/AOF files (the broker's queue is transient here), daemonized
mkdir -p "$DIR"
say "starting on $HOST:$PORT (dir $DIR)"
redis-server --bind "$HOST" --port "$PORT" --protected-mode yes --save "" --appendonly no \
    --dir "$DIR" --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" --daemonize yes

# 3. wait for PING
for ((i = 0; i < WAIT_S * 4; i++)); do
    ready && break
    sleep 0.25
done
ready || { say "nothing answers PING on $HOST:$PORT after ${WAIT_S}s; see $DIR/redis.log" >&2; exit 1; }
say "answering on $HOST:$PORT (pid $(cat "$DIR/redis.pid"))"
