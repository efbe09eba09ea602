#!/usr/bin/env bash
# Unknown-kid flood: valid RS256 traffic mixed 1:1 with tokens whose kid is random, against a
# provider whose keys come from a JWKS URL (served by nginx). Reports the rate of valid
# requests with and without the flood, and how many JWKS fetches the flood caused.
# Uses the keys and token pools made by ../shared/bench/setup.sh.
# Usage: bench/flood.sh   (after cargo build --release)
set -euo pipefail
work="${BENCH_WORK:-${TMPDIR:-/tmp}/gateway-bench}"
lua="$(cd "$(dirname "$0")/../../shared/bench/lib" && pwd)/auth.lua"
state="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$state"' EXIT
up=18621 gw=18622 duration=10
mkdir -p "$state/nginx/logs" "$state/www"
chmod 755 "$state" "$state/www"  # nginx workers run as nobody
cp "$work/jwks.json" "$state/www/jwks.json"
cat >"$state/nginx.conf" <<CONF
worker_processes 1;
pid $state/nginx/nginx.pid;
error_log $state/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$up;
    keepalive_requests 1000000;
    location = /jwks.json { root $state/www; access_log $state/nginx/jwks.log; }
    location / { return 200 "ok-upstream"; }
  }
}
CONF
nginx -p "$state/nginx" -c "$state/nginx.conf" -g 'daemon off;' &
sleep 0.5
# Half the pool: the valid tokens with their kid replaced by a random one.
python3 - "$work/tokens/rs256.pool" "$state/mixed.pool" <<'PY'
import base64, json, secrets, sys
def b64d(s): return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
def b64e(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
valid = [l.strip() for l in open(sys.argv[1]) if l.strip()]
out = []
for t in valid:
    h, p, s = t.split(".")
    header = json.loads(b64d(h))
    header["kid"] = "random-" + secrets.token_hex(8)
    out += [t, b64e(json.dumps(header).encode()) + "." + p + "." + s]
open(sys.argv[2], "w").write("\n".join(out) + "\n")
PY
cat >"$state/gw.yaml" <<YAML
listeners:
  - address: 127.0.0.1:$gw
server:
  workers: 1
  access_log: false
  token_cache:
    max_entries: 100
upstreams:
  app:
    url: http://127.0.0.1:$up
providers:
  - name: bench
    issuer: https://issuer.bench.local
    audiences: [bench-api]
    algorithms: [RS256, ES256]
    jwks_uri: http://127.0.0.1:$up/jwks.json
    remote_keys:
      allow_http: true
routes:
  - name: protected
    prefix: /api/
    upstream: app
    require: { claim: roles, contains: admin }
YAML
RUST_LOG=warn taskset -c 1 target/release/portcullis run --config "$state/gw.yaml" &
sleep 1
run() {
  taskset -c 0 wrk -t 2 -c 64 -d "${duration}s" -s "$lua" "http://127.0.0.1:$gw/api/bench" -- "$1"
}
base=$(run "$work/tokens/rs256.pool")
base_rps=$(sed -n 's/^Requests\/sec: *//p' <<<"$base")
fetches_before=$(wc -l <"$state/nginx/jwks.log")
base_total=$(sed -n "s/^ *\([0-9]*\) requests in.*/\1/p" <<<"$base")
base_rejected=$(sed -n "s/^ *Non-2xx or 3xx responses: *//p" <<<"$base")
if [[ -n "$base_rejected" ]]; then echo "the valid pool was refused ($base_rejected of $base_total): check the set-up" >&2; curl -s -i -H "Authorization: Bearer $(head -1 "$work/tokens/rs256.pool")" "http://127.0.0.1:$gw/api/bench" >&2; exit 1; fi
mixed=$(run "$state/mixed.pool")
total=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' <<<"$mixed")
rejected=$(sed -n 's/^ *Non-2xx or 3xx responses: *//p' <<<"$mixed")
fetches=$(( $(wc -l <"$state/nginx/jwks.log") - fetches_before ))
valid_rps=$(python3 -c "print(round(($total - ${rejected:-0}) / $duration))")
echo "valid traffic alone:            $base_rps req/s"
echo "valid traffic during the flood: $valid_rps req/s valid ($((total / duration)) req/s in all, ${rejected:-0} unknown-kid requests refused)"
echo "JWKS fetches caused by the flood in ${duration}s (cooldown 30s): $fetches"
