#!/usr/bin/env bash
# End to end: one axum handler that reads and updates a session counter,
# behind sesame's layer, tower-sessions + MemoryStore, tower-sessions + its
# moka store and tower-sessions + sesame's SesameStore; same app, same
# machine, same load generator (wrk) over loopback. Prints requests/s,
# p50/p90/p99 latency and resident memory per session for each store.
#
#   benches/e2e.sh                      # 10 s per store after a 2 s warm-up
#   E2E_DURATION=30s E2E_CONNECTIONS=64 benches/e2e.sh
#
# Installs wrk with apt-get if it is missing. Servers listen on 127.0.0.1
# only and are stopped by their PID.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${E2E_DURATION:-10s}
CONNECTIONS=${E2E_CONNECTIONS:-32}
THREADS=${E2E_THREADS:-1}
SESSIONS=${E2E_SESSIONS:-10000}
PORT=${E2E_PORT:-38080}
STORES=${E2E_STORES:-"sesame tower_sessions tower_sessions_moka tower_sessions_sesame"}

command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
cargo build --release --features axum,tower-sessions --example e2e
BIN=${CARGO_TARGET_DIR:-target}/release/examples/e2e
TMP=$(mktemp -d)
SERVER=
cleanup() {
    if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT

printf '%-22s %12s %10s %10s %10s %12s %s\n' store requests/s p50 p90 p99 B/session errors
for store in $STORES; do
    rm -f "$TMP/cookies"
    "$BIN" "$store" "$PORT" "$SESSIONS" "$TMP/cookies" 2>"$TMP/$store.err" &
    SERVER=$!
    # Bounded wait (10 s) for the server to listen.
    for _ in $(seq 100); do
        if [ -s "$TMP/cookies" ] && (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
        sleep 0.1
    done
    export COOKIES="$TMP/cookies"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -s benches/e2e.lua "http://127.0.0.1:$PORT/" >/dev/null
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s benches/e2e.lua \
        "http://127.0.0.1:$PORT/" >"$TMP/$store.txt"
    kill "$SERVER"
    wait "$SERVER" 2>/dev/null || true
    SERVER=
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$TMP/$store.txt")
    p50=$(awk '$1 == "50%" {print $2}' "$TMP/$store.txt")
    p90=$(awk '$1 == "90%" {print $2}' "$TMP/$store.txt")
    p99=$(awk '$1 == "99%" {print $2}' "$TMP/$store.txt")
    mem=$(awk -F'[= ]' '/^rss_per_session=/ {print $2}' "$TMP/$store.err")
    errors=$(awk '/Non-2xx|Socket errors/ {print}' "$TMP/$store.txt" | tr '\n' ' ')
    printf '%-22s %12s %10s %10s %10s %12s %s\n' "$store" "$rps" "$p50" "$p90" "$p99" "${mem:--}" "${errors:-none}"
done
echo "($DURATION per store, $CONNECTIONS connections, $THREADS wrk thread(s), $SESSIONS sessions, $(nproc) cores shared by server and wrk)"
