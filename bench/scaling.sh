#!/usr/bin/env bash
# Throughput of Portcullis with 1 and with 2 worker threads, unique RS256 tokens (every request a
# full verification), wrk and an nginx upstream on the same machine. Uses the keys and token
# pools made by ../shared/bench/setup.sh. On a 2-core machine the load generator and upstream
# share the cores with the gateway, so the 2-worker figure understates real scaling.
# Reports req/s and the gateway's CPU time per request (the figure that compares runtime
# shapes on a machine this small). PORTCULLIS_BIN picks another build.
# Usage: bench/scaling.sh   (after cargo build --release)
set -euo pipefail
work="${BENCH_WORK:-${TMPDIR:-/tmp}/gateway-bench}"
lua="$(cd "$(dirname "$0")/../../shared/bench/lib" && pwd)/auth.lua"
state="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$state"' EXIT
up=18611 gw=18612
mkdir -p "$state/nginx/logs"
cat >"$state/nginx.conf" <<CONF
worker_processes 1;
pid $state/nginx/nginx.pid;
error_log $state/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  server { listen 127.0.0.1:$up; keepalive_requests 1000000; location / { return 200 "ok-upstream"; } }
}
CONF
nginx -p "$state/nginx" -c "$state/nginx.conf" -g 'daemon off;' &
sleep 0.5
for workers in ${WORKER_COUNTS:-1 2}; do
  cat >"$state/gw.yaml" <<YAML
listeners:
  - address: 127.0.0.1:$gw
server:
  workers: $workers
  access_log: false
  token_cache:
    max_entries: ${CACHE_ENTRIES:-1}
upstreams:
  app:
    url: http://127.0.0.1:$up
providers:
  - name: bench
    issuer: https://issuer.bench.local
    audiences: [bench-api]
    algorithms: [RS256, ES256]
    jwks_file: $work/jwks.json
routes:
  - name: protected
    prefix: /api/
    upstream: app
    require: { claim: roles, contains: admin }
YAML
  RUST_LOG=warn "${PORTCULLIS_BIN:-target/release/portcullis}" run --config "$state/gw.yaml" &
  pid=$!
  sleep 1
  wrk -t 2 -c 64 -d 3s -s "$lua" "http://127.0.0.1:$gw/api/bench" -- "$work/tokens/rs256.pool" >/dev/null
  # CPU time of the gateway (user + system, clock ticks) around the measured run.
  ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
  before=$(ticks)
  out=$(wrk -t 2 -c 64 -d 10s -s "$lua" "http://127.0.0.1:$gw/api/bench" -- "$work/tokens/rs256.pool")
  after=$(ticks)
  requests=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' <<<"$out")
  rps=$(sed -n 's/^Requests\/sec: *//p' <<<"$out")
  hz=$(getconf CLK_TCK)
  cpu_us=$(awk -v t=$((after - before)) -v n="$requests" -v hz="$hz" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
  echo "workers=$workers  unique RS256 tokens: $rps req/s, gateway CPU $cpu_us us/request"
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
