#!/usr/bin/env bash
# The many-nodes figures of BENCHMARKS.md. Each run starts its own
# redis-server on a free port and a fresh PostgreSQL database, then NODES
# release hubs on it (REDIS_URL set; NODES=1 REDIS=0 is a lone node, the
# baseline), runs hub-bench against all of them and stops them. Besides
# hub-bench's figures it prints redis-server's CPU time over the run.
#
# REDIS=cluster runs the nodes on a Redis Cluster of three masters (no
# replicas: the figures are the shards' own work) instead, and prints each
# shard's CPU time; REDIS=both alternates one Redis and the cluster, run by
# run, so the two are compared on the same machine in the same minutes.
#
#   bench/cluster.sh connect|fanout-closed|deploy [hub-bench options]
#   NODES=3 RUNS=3 PG=postgres://postgres@127.0.0.1:5432/test bench/cluster.sh fanout-closed
#   REDIS=both bench/cluster.sh fanout-closed --rooms 30
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
redis=()
redis_ports=()
scratch=$(mktemp -d)
cleanup() {
    for pid in "${pids[@]}" "${redis[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    psql "$admin" -qc "DROP DATABASE IF EXISTS $database" >/dev/null 2>&1 || true
    rm -rf "$scratch"
}
trap cleanup EXIT

# Starts one redis-server (or, with "cluster", three cluster masters joined
# by redis-cli) and sets `redis`, `redis_ports` and `cluster` (the settings
# that point a hub at it).
start_redis() {
    redis=()
    redis_ports=()
    local masters=1 flags=()
    if [[ $1 == cluster ]]; then
        masters=3
    fi
    for i in $(seq "$masters"); do
        local port dir=$scratch/redis-$i
        port=$(free_port)
        rm -rf "$dir" && mkdir -p "$dir"
        flags=()
        [[ $1 == cluster ]] && flags=(--cluster-enabled yes --cluster-config-file nodes.conf --cluster-port "$(free_port)")
        redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning \
            --dir "$dir" "${flags[@]}" &
        redis+=($!)
        redis_ports+=("$port")
    done
    for port in "${redis_ports[@]}"; do
        until redis-cli -p "$port" PING >/dev/null 2>&1; do sleep 0.1; done
    done
    if [[ $1 == cluster ]]; then
        redis-cli --cluster create $(printf '127.0.0.1:%s ' "${redis_ports[@]}") --cluster-yes >/dev/null
        until redis-cli -p "${redis_ports[0]}" CLUSTER INFO | grep -q cluster_state:ok; do sleep 0.1; done
        local seeds
        seeds=$(printf 'redis://127.0.0.1:%s/,' "${redis_ports[@]}")
        cluster=(REDIS_URL="${seeds%,}" HUB_REDIS_CLUSTER=true)
    else
        cluster=(REDIS_URL="redis://127.0.0.1:${redis_ports[0]}/")
    fi
}

export JWT_SIGNING_KEY=bench-signing-key JWT_ACCESS_TOKEN_LIFETIME=60 RUST_LOG=warn
export HUB_RATE_PER_SEC=100000 HUB_RATE_BURST=100000
# Every bench client comes from 127.0.0.1, many as one user, and far faster
# than people: the caps per person and per node would refuse them.
export HUB_PERSON_RATE_PER_SEC=100000 HUB_PERSON_RATE_BURST=100000 HUB_MAX_HANDSHAKES_PER_SEC=1000000
export HUB_MAX_SOCKETS_PER_USER=1000000 HUB_MAX_GUEST_SOCKETS_PER_ADDRESS=1000000
export DATABASE_URL="${admin%/*}/$database"

case ${REDIS:-1} in
0 | 1) kinds=(one) ;;
cluster) kinds=(cluster) ;;
both) kinds=(one cluster) ;;
*)
    echo "REDIS: 0, 1, cluster or both" >&2
    exit 2
    ;;
esac

for run in $(seq "$runs"); do for kind in "${kinds[@]}"; do
    psql "$admin" -qc "DROP DATABASE IF EXISTS $database" >/dev/null 2>&1
    psql "$admin" -qc "CREATE DATABASE $database" >/dev/null
    ./target/release/hub migrate >/dev/null
    start_redis "$kind"
    [[ $nodes -eq 1 && ${REDIS:-1} == 0 ]] && cluster=()
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
    over=
    [[ ${#cluster[@]} -gt 0 ]] && over=" over Redis"
    [[ $kind == cluster ]] && over=" over a Redis Cluster of ${#redis[@]} masters"
    echo "== $scenario, $nodes node(s)$over, run $run of $runs"
    before=()
    for pid in "${redis[@]}"; do before+=("$(cpu_ticks "$pid")"); done
    extra=()
    [[ $scenario == deploy ]] && extra=(--kill-pid "${pids[0]}")
    ./target/release/hub-bench "${servers[@]}" --server-pid "${pids[0]}" "$command" "${args[@]}" "${extra[@]}"
    total=0
    for i in "${!redis[@]}"; do
        spent=$((($(cpu_ticks "${redis[$i]}") - before[i]) * 10))
        total=$((total + spent))
        # Where that time went: the five commands redis-server spent most on.
        echo "redis-server $((i + 1)) CPU: $spent ms; its commands by time (INFO commandstats):"
        redis-cli -p "${redis_ports[$i]}" INFO commandstats | tr -d '\r' | grep '^cmdstat_' |
            sed -E 's/^cmdstat_([^:]+):calls=([0-9]+),usec=([0-9]+).*/\3 \1 \2/' |
            sort -rn | head -5 | awk '{printf "  %-12s %9d calls %9d ms\n", $2, $3, $1 / 1000}'
    done
    echo "redis-server CPU: $total ms"
    for pid in "${pids[@]}" "${redis[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=()
    redis=()
done; done
