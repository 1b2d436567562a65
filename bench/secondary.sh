#!/usr/bin/env bash
# The nameserver figure of BENCHMARKS.md: how soon BIND and Knot answer a
# change made in the DNS panel. Each run starts a release hub on a fresh
# SQLite file, serving DNS with a catalog zone and NOTIFYing two
# secondaries, then BIND (named) and Knot (knotd) configured with that
# catalog alone, then `hub-bench secondary` (CHANGES changes, default 200),
# and stops them all. RUNS runs (default 3). Needs named, knotd
# (`apt-get install bind9 knot`).
#
#   bench/secondary.sh
#   RUNS=5 CHANGES=500 bench/secondary.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
changes=${CHANGES:-200}
for program in named knotd; do
    command -v "$program" >/dev/null || {
        echo "$program is missing: apt-get install bind9 knot" >&2
        exit 2
    }
done
cargo build --release --bins -q

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
catalog=catalog.hub.invalid
dir=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

# BIND as a catalog consumer (RFC 9432) of the hub at $1, on port $2.
start_bind() {
    mkdir -p "$dir/bind"
    cat >"$dir/bind/named.conf" <<EOF
options {
    directory "$dir/bind";
    pid-file none;
    session-keyfile none;
    listen-on port $2 { 127.0.0.1; };
    listen-on-v6 { none; };
    recursion no;
    dnssec-validation no;
    notify no;
    catalog-zones { zone "$catalog" default-primaries { 127.0.0.1 port $1; } in-memory yes min-update-interval 1; };
};
controls { };
zone "$catalog" { type secondary; file "catalog.db"; primaries { 127.0.0.1 port $1; }; };
EOF
    named -g -n 1 -c "$dir/bind/named.conf" 2>"$dir/bind/named.log" &
    pids+=($!)
}

# Knot as a catalog consumer of the hub at $1, on port $2.
start_knot() {
    mkdir -p "$dir/knot/run" "$dir/knot/db" "$dir/knot/zones"
    cat >"$dir/knot/knot.conf" <<EOF
server:
    rundir: "$dir/knot/run"
    listen: 127.0.0.1@$2
log:
  - target: stderr
    any: warning
database:
    storage: "$dir/knot/db"
remote:
  - id: hub
    address: 127.0.0.1@$1
acl:
  - id: notify_from_hub
    address: 127.0.0.1
    action: notify
template:
  - id: default
    storage: "$dir/knot/zones"
  - id: member
    storage: "$dir/knot/zones"
    master: hub
    acl: notify_from_hub
zone:
  - domain: $catalog
    master: hub
    acl: notify_from_hub
    catalog-role: interpret
    catalog-template: member
EOF
    knotd -c "$dir/knot/knot.conf" 2>"$dir/knot/knotd.log" &
    pids+=($!)
}

for run in $(seq "$runs"); do
    rm -rf "${dir:?}"/*
    http=$(free_port) dns=$(free_port) bind_port=$(free_port) knot_port=$(free_port)
    export DATABASE_URL="sqlite://$dir/hub.sqlite3" HUB_BIND="127.0.0.1:$http" RUST_LOG=warn
    export JWT_SIGNING_KEY=bench-signing-key JWT_ACCESS_TOKEN_LIFETIME=600
    export HUB_DNS_LISTEN="127.0.0.1:$dns" HUB_DNS_CATALOG=$catalog HUB_DNS_DEFAULT_NS=ns1.bench.invalid.
    export HUB_DNS_NOTIFY="127.0.0.1:$bind_port, 127.0.0.1:$knot_port"
    # One panel makes every change, as fast as it is answered.
    export HUB_RATE_PER_SEC=100000 HUB_RATE_BURST=100000 HUB_DNS_WRITES_PER_SEC=100000
    export HUB_DNS_MAX_RECORDS=100000 HUB_PERSON_RATE_PER_SEC=100000 HUB_PERSON_RATE_BURST=100000
    ./target/release/hub migrate >/dev/null
    ./target/release/hub serve &
    pids+=($!)
    hub=$!
    for _ in $(seq 50); do
        curl -sf "http://127.0.0.1:$http/healthz" >/dev/null && break
        sleep 0.1
    done
    start_bind "$dns" "$bind_port"
    start_knot "$dns" "$knot_port"
    echo "== secondary, run $run of $runs (BIND on $bind_port, Knot on $knot_port)"
    ./target/release/hub-bench --server "127.0.0.1:$http" --server-pid "$hub" secondary \
        --secondary "127.0.0.1:$bind_port" --secondary "127.0.0.1:$knot_port" --changes "$changes" || {
        tail -n 20 "$dir/bind/named.log" "$dir/knot/knotd.log"
        exit 1
    }
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=()
done
