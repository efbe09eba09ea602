#!/usr/bin/env bash
# The soak: a real gateway process under mixed traffic (valid, expired, forged, unknown-kid,
# public, denied, login/refresh/logout) while its JWKS rotates and its config reloads
# (examples/soak.rs). Writes OUT/soak.csv (RSS, open fds, answers, unexpected, JWKS fetches,
# rotations, reloads each second), OUT/summary.txt and, when matplotlib can be had, OUT/soak.png.
# Exits non-zero unless: zero unexpected answers, every reload applied, RSS flat after warm-up
# (±10 %), no fd growth.
#
#   bench/soak.sh [--seconds N] [--debug] [--out DIR] [--connections N] [--rotate-every S]
#                 [--reload-every S] [--token-ttl S] [--warm-up S]
#
# Default: 30 minutes on the release build (cargo build --release first). --debug uses the
# debug build that `cargo test` leaves behind (CI: --seconds 120 --debug).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
seconds=1800
out=soak-out
pass=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --debug) profile=debug; shift ;;
    --seconds) seconds="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --connections|--rotate-every|--reload-every|--token-ttl|--warm-up) pass+=("$1" "$2"); shift 2 ;;
    *) echo "soak.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [[ ${#pass[@]} -eq 0 && $seconds -lt 600 ]]; then
  # Short runs still see several rotations and reloads, and fill the token cache early.
  pass=(--rotate-every 20 --reload-every 10 --token-ttl 20 --warm-up $((seconds / 2)))
fi

flag=(); [[ $profile == release ]] && flag=(--release)
cargo build --locked --quiet "${flag[@]}" --bin portcullis --example soak
status=0
"target/$profile/examples/soak" --bin "target/$profile/portcullis" --seconds "$seconds" \
  --out "$out" "${pass[@]}" || status=$?

if ! python3 -c 'import matplotlib' 2>/dev/null; then
  python3 -m pip install -q --disable-pip-version-check matplotlib >/dev/null 2>&1 || true
fi
if python3 -c 'import matplotlib' 2>/dev/null; then
  python3 bench/soak_plot.py "$out/soak.csv" "$out/soak.png" || true
else
  echo "soak: matplotlib is not available; no plot (the CSV is $out/soak.csv)"
fi
exit $status
