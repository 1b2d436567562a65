#!/usr/bin/env bash
# The many-nodes figures of BENCHMARKS.md. Each run starts its own
# redis-server on a free port and a fresh PostgreSQL database, then NODES
# release hubs on it (REDIS_URL set; NODES=1 without REDIS_URL is a lone
# node, the baseline), runs hub-bench against all of them and stops them.
# Besides hub-bench's figures it prints redis-server's CPU time over the run.
#
#   bench/cluster.sh connect|fanout-closed|deploy [hub-bench options]
#   NODES=3 RUNS=3 PG=postgres://postgres@127.0.0.1:5432/test bench/cluster.sh fanout-closed
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:?usage: bench/cluster.sh connect|fanout-closed|deploy [args]}
shift
runs=${RUNS:-3}
nodes=${NODES:-3}
admin=${PG:-postgres://postgres@127.0.0.1:5432/test}

case $scenario in
connect) command=connect args=(--sockets 51000 --processes 3 --concurrency 64 --rooms 5100 --hold-secs 20) ;;
fanout-closed) command=fanout args=(--rooms 10 --members 100 --publishers 1 --rate 0 --window 32 --duration-secs 10) ;;
# The first node is the one stopped (its pid is added below).
deploy) command=deploy args=(--sockets 30000 --processes 3 --rooms 3000 --rate 0.2 --before-secs 10 --after-secs 60) ;;
*)
    echo "unknown scenario: $scenario" >&2
    exit 2
    ;;
esac
(($#)) && args=("$@")
cargo build --release --bins -q

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
database="bench_cluster_$$"
pids=()
redis=
cleanup() {
    for pid in "${pids[@]}" $redis; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    psql "$admin" -qc "DROP DATABASE IF EXISTS $database" >/dev/null 2>&1 || true
}
trap cleanup EXIT

export JWT_SIGNING_KEY=bench-signing-key JWT_ACCESS_TOKEN_LIFETIME=60 RUST_LOG=warn
export HUB_RATE_PER_SEC=100000 HUB_RATE_BURST=100000
export DATABASE_URL="${admin%/*}/$database"

for run in $(seq "$runs"); do
    psql "$admin" -qc "DROP DATABASE IF EXISTS $database" >/dev/null 2>&1
    psql "$admin" -qc "CREATE DATABASE $database" >/dev/null
    ./target/release/hub migrate >/dev/null
    redis_port=$(free_port)
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning &
    redis=$!
    cluster=()
    [[ $nodes -gt 1 || ${REDIS:-1} == 1 ]] && cluster=(REDIS_URL="redis://127.0.0.1:$redis_port/")
    servers=()
    pids=()
    for _ in $(seq "$nodes"); do
        port=$(free_port)
        env "${cluster[@]}" HUB_BIND="127.0.0.1:$port" ./target/release/hub serve &
        pids+=($!)
        servers+=(--server "127.0.0.1:$port")
        for _ in $(seq 100); do
            curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
            sleep 0.1
        done
    done
    echo "== $scenario, $nodes node(s)${cluster:+ over Redis}, run $run of $runs"
    before=$(cpu_ticks "$redis")
    extra=()
    [[ $scenario == deploy ]] && extra=(--kill-pid "${pids[0]}")
    ./target/release/hub-bench "${servers[@]}" --server-pid "${pids[0]}" "$command" "${args[@]}" "${extra[@]}"
    after=$(cpu_ticks "$redis")
    echo "redis-server CPU: $(((after - before) * 10)) ms"
    # Where that time went: the five commands redis-server spent most on.
    echo "redis-server commands by time (INFO commandstats):"
    redis-cli -p "$redis_port" INFO commandstats | tr -d '\r' | grep '^cmdstat_' |
        sed -E 's/^cmdstat_([^:]+):calls=([0-9]+),usec=([0-9]+).*/\3 \1 \2/' |
        sort -rn | head -5 | awk '{printf "  %-12s %9d calls %9d ms\n", $2, $3, $1 / 1000}'
    for pid in "${pids[@]}" $redis; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=()
    redis=
done
