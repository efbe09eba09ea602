#!/usr/bin/env bash
# Unknown-kid flood: valid RS256 traffic mixed with tokens whose kid is random (one for every
# FLOOD_EVERY valid ones; default 1, i.e. half the requests), against a
# provider whose keys come from a JWKS URL (served by nginx). Reports the rate of valid
# requests with and without the flood, and how many JWKS fetches the flood caused.
# Uses the keys and token pools made by ../shared/bench/setup.sh.
# Usage: bench/flood.sh   (after cargo build --release)
set -euo pipefail
work="${BENCH_WORK:-${TMPDIR:-/tmp}/gateway-bench}"
lua="$(cd "$(dirname "$0")/../../shared/bench/lib" && pwd)/auth.lua"
state="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$state"' EXIT
up=18621 gw=18622 duration=5
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
# The valid tokens, and after every FLOOD_EVERY-th one a copy with a random kid.
python3 - "$work/tokens/rs256.pool" "$state/mixed.pool" "${FLOOD_EVERY:-1}" <<'PY'
import base64, json, secrets, sys
def b64d(s): return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
def b64e(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
valid = [l.strip() for l in open(sys.argv[1]) if l.strip()]
every = int(sys.argv[3])
out = []
for i, t in enumerate(valid):
    out.append(t)
    if i % every == 0:
        h, p, s = t.split(".")
        header = json.loads(b64d(h))
        header["kid"] = "random-" + secrets.token_hex(8)
        out.append(b64e(json.dumps(header).encode()) + "." + p + "." + s)
open(sys.argv[2], "w").write("\n".join(out) + "\n")
PY
cat >"$state/gw.yaml" <<YAML
listeners:
  - address: 127.0.0.1:$gw
server:
  workers: 1
  access_log: false
  # One entry: the pool's tokens never hit (see adapter.sh), so every valid request is a full
  # verification, the worst case for the flood.
  token_cache:
    max_entries: 1
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
# Alternate the two loads three times (A B A B A B) and take medians: this VM drifts by
# 10-20 % between consecutive runs.
count() { sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' <<<"$1"; }
refused() { local n; n=$(sed -n 's/^ *Non-2xx or 3xx responses: *//p' <<<"$1"); echo "${n:-0}"; }
alone=() during=() totals=()
fetches_before=$(wc -l <"$state/nginx/jwks.log")
for round in 1 2 3; do
  base=$(run "$work/tokens/rs256.pool")
  if [[ $(refused "$base") != 0 ]]; then
    echo "the valid pool was refused: check the set-up" >&2
    curl -s -i -H "Authorization: Bearer $(head -1 "$work/tokens/rs256.pool")" "http://127.0.0.1:$gw/api/bench" >&2
    exit 1
  fi
  alone+=($(( $(count "$base") / duration )))
  mixed=$(run "$state/mixed.pool")
  during+=($(( ($(count "$mixed") - $(refused "$mixed")) / duration )))
  totals+=($(( $(count "$mixed") / duration )))
done
fetches=$(( $(wc -l <"$state/nginx/jwks.log") - fetches_before ))
median() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
a=$(median "${alone[@]}") d=$(median "${during[@]}") t=$(median "${totals[@]}")
echo "valid traffic alone (median of 3):  $a req/s   [${alone[*]}]"
echo "valid traffic during the flood (1 random kid per ${FLOOD_EVERY:-1} valid): $d req/s valid of $t in all   [${during[*]}]"
echo "kept: $(( 100 * d / a )) %"
echo "JWKS fetches caused by the floods ($(( 3 * duration ))s of flood, cooldown 30s): $fetches"
