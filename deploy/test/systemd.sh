#!/usr/bin/env bash
# systemd unit test (make test-deploy): systemd-analyze verify (syntax,
# directives, the ExecStart binary) and an offline security score, on
# deploy/systemd/consentgate.service with ExecStart pointing at a fresh
# build. Nothing here starts the unit: CI has no systemd as PID 1.
set -euo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}
unit=deploy/systemd/consentgate.service
if ! command -v systemd-analyze >/dev/null; then
	echo "systemd-analyze not installed: systemd unit only grep-checked"
fi
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

$GO build -o "$t/consentgate" ./cmd/consentgate
sed "s#/usr/local/bin/consentgate#$t/consentgate#g" "$unit" >"$t/consentgate.service"

# The hardening the docs promise.
for d in DynamicUser=yes ProtectSystem=strict StateDirectory=consentgate NoNewPrivileges=yes CapabilityBoundingSet= \
	Environment=CONSENTGATE_DELIVERY_SPOOL_DIR=/var/lib/consentgate/spool; do
	grep -qx "$d" "$unit" || fail "$unit lacks $d"
done
grep -q '^AmbientCapabilities' "$unit" && fail "$unit grants capabilities by default (only for :80/:443, commented)"
# The stop timeout covers the default config's timeouts.drain (5s) +
# timeouts.shutdown (20s) + delivery.drain (5s).
stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s$/\1/p' "$unit")
[ "${stop:-0}" -gt 30 ] || fail "TimeoutStopSec=${stop}s does not exceed timeouts.drain + timeouts.shutdown + delivery.drain (30s)"

if command -v systemd-analyze >/dev/null; then
	out=$(systemd-analyze verify "$t/consentgate.service" 2>&1) || fail "systemd-analyze verify: $out"
	[ -z "$out" ] || fail "systemd-analyze verify warns: $out"
	echo "systemd-analyze verify OK"
	systemd-analyze security --offline=yes --threshold=20 "$t/consentgate.service" | tail -1 ||
		fail "exposure above 2.0: $(systemd-analyze security --offline=yes "$t/consentgate.service" | grep '✗')"
fi
"$t/consentgate" check --config deploy/edge/nginx/consentgate.yaml >/dev/null || fail "the sample config does not load"
echo "systemd unit test OK"
