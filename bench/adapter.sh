#!/usr/bin/env bash
# Starts Portcullis for ../shared/bench/run.sh --gateway bench/adapter.sh (see its README).
# Build first: cargo build --release. Same binary and config semantics users run; the only
# bench-specific settings are those the harness asks for (one worker, no access log).
set -euo pipefail
cfg="$BENCH_STATE_DIR/portcullis.yaml"
{
  echo "listeners:"
  echo "  - address: $BENCH_LISTEN"
  if [[ -n "${BENCH_TLS_LISTEN:-}" ]]; then
    echo "  - address: $BENCH_TLS_LISTEN"
    echo "    tls:"
    echo "      certificate: $BENCH_TLS_CERT"
    echo "      private_key: $BENCH_TLS_KEY"
  fi
  cat <<YAML
server:
  workers: ${BENCH_WORKERS:-1}
  access_log: false
  # The harness forbids a verified-token cache that could hit in the token-pool scenarios. Its
  # two wrk threads walk the 1000-token pool from points 919 apart, but at rates that drift
  # apart, so the distance between them wanders through the whole pool: an LRU of 100 entries
  # did hit now and then (ES256 samples came out up to 25 % cheaper). One entry hits only
  # when both threads send the very same token back to back, and always in rs256-1tok.
  token_cache:
    max_entries: 1
upstreams:
  app:
    url: $BENCH_UPSTREAM
providers:
  - name: bench
    issuer: $BENCH_ISSUER
    audiences: [$BENCH_AUDIENCE]
    algorithms: [RS256, ES256]
    jwks_file: $BENCH_JWKS
routes:
  - name: protected
    prefix: $BENCH_ROUTE
    upstream: app
    require:
      claim: roles
      contains: $BENCH_REQUIRED_ROLE
YAML
  if [[ -n "${BENCH_PUBLIC_ROUTE:-}" ]]; then
    cat <<YAML
  - name: public
    prefix: $BENCH_PUBLIC_ROUTE
    upstream: app
    policy: public
YAML
  fi
} >"$cfg"
export RUST_LOG=warn
# shellcheck disable=SC2086 # BENCH_EXEC_PREFIX is a command line (valgrind under instr.sh).
exec ${BENCH_EXEC_PREFIX:-} target/release/portcullis run --config "$cfg"
