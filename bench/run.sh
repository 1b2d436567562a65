#!/usr/bin/env bash
# One command per scenario of BENCHMARKS.md. Each run starts a fresh hub
# (release build) on a fresh SQLite file, runs hub-bench against it on
# loopback, and stops it; RUNS runs (default 3).
#
#   bench/run.sh connect | fanout | fanout-closed | analytics | dns | axfr [hub-bench options]
#
# Options given replace the scenario's documented ones (see `hub-bench
# SUBCOMMAND --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:?usage: bench/run.sh connect|fanout|fanout-closed|analytics|dns|axfr [args]}
shift
runs=${RUNS:-3}
port=${BENCH_PORT:-18080}

case $scenario in
connect) command=connect args=(--sockets 19000 --processes 2 --concurrency 64 --rooms 1900 --hold-secs 20) ;;
fanout) command=fanout args=(--rooms 10 --members 100 --publishers 1 --rate 100 --duration-secs 10) ;;
fanout-closed) command=fanout args=(--rooms 10 --members 100 --publishers 1 --rate 0 --window 32 --duration-secs 10) ;;
analytics) command=analytics args=(--dashboards 1000 --events-per-sec 5000 --batch 10 --duration-secs 10) ;;
dns) command=dns args=(--panels 1000 --zones 100 --writes-per-sec 200 --duration-secs 10) ;;
axfr) command=axfr args=(--dns "127.0.0.1:$((port + 1))" --records 10000 --runs 5) ;;
*)
    echo "unknown scenario: $scenario" >&2
    exit 2
    ;;
esac

(($#)) && args=("$@")
cargo build --release --bins -q
dir=$(mktemp -d)
server=
cleanup() {
    [[ -n $server ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

export DATABASE_URL="sqlite://$dir/hub.sqlite3" HUB_BIND="127.0.0.1:$port"
export JWT_SIGNING_KEY=bench-signing-key HUB_INGEST_KEY=bench-ingest-key JWT_ACCESS_TOKEN_LIFETIME=60
# Publishers send far faster than a person types.
export HUB_RATE_PER_SEC=100000 HUB_RATE_BURST=100000 RUST_LOG=warn
# The dns writers too; and their zones keep every record they create, so a
# longer run than the documented one does not meet the record limit.
export HUB_DNS_WRITES_PER_SEC=100000 HUB_DNS_MAX_RECORDS=100000 HUB_DNS_LISTEN="127.0.0.1:$((port + 1))"
# Every bench client comes from 127.0.0.1, many as one user, and far faster
# than people: the caps per person and per node would refuse them.
export HUB_PERSON_RATE_PER_SEC=100000 HUB_PERSON_RATE_BURST=100000 HUB_MAX_HANDSHAKES_PER_SEC=1000000
export HUB_MAX_SOCKETS_PER_USER=1000000 HUB_MAX_GUEST_SOCKETS_PER_ADDRESS=1000000

for run in $(seq "$runs"); do
    rm -f "$dir"/hub.sqlite3*
    ./target/release/hub migrate >/dev/null
    ./target/release/hub serve &
    server=$!
    for _ in $(seq 50); do
        curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
        sleep 0.1
    done
    echo "== $scenario, run $run of $runs"
    ./target/release/hub-bench --server "127.0.0.1:$port" --server-pid "$server" "$command" "${args[@]}"
    kill "$server"
    wait "$server" 2>/dev/null || true
    server=
done
