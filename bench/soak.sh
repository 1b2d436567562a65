#!/usr/bin/env bash
# The soak: a hub on a fresh SQLite file (and, with REDIS_URL, a Redis it
# shares nothing else with) under every kind of load at once, then none;
# hub-bench checks that sockets, rooms, topics, descriptors, Redis keys and
# memory come back to the warm baseline, and exits 1 when they do not.
#
#   bench/soak.sh [SECONDS]                 # 60 by default
#   SOAK_REDIS=1 bench/soak.sh [SECONDS]    # the hub on a redis-server of its own
#   HUB_BIN_DIR=target/debug SOAK_REDIS=1 bench/soak.sh 60    # .ci/run
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
port=${SOAK_PORT:-18090}
bin=${HUB_BIN_DIR:-target/release}
[ "$bin" = target/release ] && cargo build --release --bins -q

dir=$(mktemp -d)
server=
redis_server=
cleanup() {
    [[ -n $server ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    [[ -n $redis_server ]] && kill "$redis_server" 2>/dev/null && wait "$redis_server" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

export DATABASE_URL="sqlite://$dir/hub.sqlite3" HUB_BIND="127.0.0.1:$port"
export JWT_SIGNING_KEY=soak-signing-key HUB_INGEST_KEY=soak-ingest-key RUST_LOG=warn
# The load comes from one address and a few users, far faster than people.
export HUB_RATE_PER_SEC=100000 HUB_RATE_BURST=100000 HUB_DNS_WRITES_PER_SEC=100000
export HUB_PERSON_RATE_PER_SEC=100000 HUB_PERSON_RATE_BURST=100000 HUB_MAX_HANDSHAKES_PER_SEC=1000000
export HUB_MAX_SOCKETS_PER_USER=1000000 HUB_MAX_GUEST_SOCKETS_PER_ADDRESS=1000000
# Sockets dropped without a close are reaped within the client timeout.
export HUB_HEARTBEAT_SECS=5 HUB_CLIENT_TIMEOUT_SECS=15
redis=()
if [ "${SOAK_REDIS:-0}" = 1 ]; then
    # A Redis of its own: its key count is part of what must come back.
    redis-server --port $((port + 1)) --save '' --appendonly no --dir "$dir" >"$dir/redis.log" 2>&1 &
    redis_server=$!
    for _ in $(seq 50); do
        redis-cli -p $((port + 1)) ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    export REDIS_URL="redis://127.0.0.1:$((port + 1))"
    redis=(--redis "$REDIS_URL")
fi

if curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; then
    echo "soak: port $port already serves something; set SOAK_PORT" >&2
    exit 1
fi
"$bin/hub" migrate >/dev/null
"$bin/hub" serve &
server=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.1
done
kill -0 "$server" # the hub is ours and serving
"$bin/hub-bench" --server "127.0.0.1:$port" --server-pid "$server" soak \
    --duration-secs "$secs" "${redis[@]}"
