#!/usr/bin/env bash
# Mutation testing of the hub's core, run by hand (never in CI: it takes
# hours). cargo-mutants breaks one line at a time (a comparison turned
# round, a body replaced by a default) and runs the tests against each
# mutant; a mutant no test notices is a rule no test guards. TESTING.md
# says what was found, and why the mutants left alive are harmless.
#
#   cargo install cargo-mutants --locked      # once
#   tests/mutants.sh ws                       # one area (see below), or
#   tests/mutants.sh all                      # every area, one after another
#
# Each area's mutants are tested with the unit tests and the SQLite variants
# of the API tests that exercise it (the PostgreSQL variants run the same
# code paths above the database), so that one mutant costs one incremental
# build (about 15 s here) and well under a minute of tests, not the whole
# suite. Results land in target/mutants/<area>/mutants.out/ (caught.txt,
# missed.txt, timeout.txt, unviable.txt).
#
# The run works in a copy of the tree (cargo-mutants' default), so the work
# tree stays untouched; with CARGO_MUTANTS_IN_PLACE=1 it mutates this tree in
# place instead, which reuses target/ and skips the copy's cold build, and
# must then be left alone until it ends.
set -euo pipefail
cd "$(dirname "$0")/.."

run_area() {
    local area=$1
    shift
    local files=() filters=()
    while [ "$1" != "--" ]; do
        files+=(--file "$1")
        shift
    done
    shift
    filters=("$@")
    local out="target/mutants/$area"
    mkdir -p "$out"
    local place=()
    [ "${CARGO_MUTANTS_IN_PLACE:-0}" = 1 ] && place=(--in-place)
    echo "mutants: $area"
    # A mutant that makes a test hang is killed at 3x the clean run's time.
    cargo mutants "${place[@]}" --no-shuffle --timeout-multiplier 3 \
        --output "$out" "${files[@]}" \
        -- --lib --test api -- "${filters[@]}" --skip postgres:: --skip cluster:: --skip django:: \
        || true # cargo-mutants exits non-zero when a mutant survives; the report says which.
    echo "mutants: $area: $(wc -l <"$out/mutants.out/caught.txt") caught," \
        "$(wc -l <"$out/mutants.out/missed.txt") missed," \
        "$(wc -l <"$out/mutants.out/timeout.txt") timed out," \
        "$(wc -l <"$out/mutants.out/unviable.txt") unviable"
}

area() {
    case $1 in
    ws)
        run_area ws 'src/ws/**' src/http/guard.rs -- \
            ws:: http:: enforcement:: limits:: guard:: lifetime:: token_expiry:: closes:: chat::sqlite:: http_edge::
        ;;
    auth)
        run_area auth 'src/auth/**' -- \
            auth:: enforcement:: guard:: lifetime:: token_api::
        ;;
    chat)
        run_area chat 'src/chat/**' -- \
            chat:: chat_rules:: limits::
        ;;
    dns)
        run_area dns src/dns/validate.rs src/dns/zone.rs -- \
            dns:: dns_rules:: dns_races:: dns_limits:: dns_import::
        ;;
    *)
        echo "unknown area '$1': ws, auth, chat, dns or all" >&2
        exit 2
        ;;
    esac
}

if [ "${1:-}" = all ]; then
    for a in ws auth chat dns; do area "$a"; done
else
    area "${1:?name an area: ws, auth, chat, dns or all}"
fi
