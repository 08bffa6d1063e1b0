#!/usr/bin/env bash
# make test-deploy: every deployment path as far as this machine allows.
# Installs what it needs from Debian when missing (CI runs as root).
#   chart       Helm SDK render + strict decode + lint + invariants (go test ./chart)
#   alerts      promtool check rules / test rules
#   systemd     systemd-analyze verify + security score
#   container   static binary in an empty read-only root as uid 65532; buildah image
#   nginx       real nginx → gateway → fake upstream, both styles, both geo sources
#   edge        Cloudflare Worker and CloudFront Function under node --test; GCP files parsed
#   release     make release: static linux/amd64 + linux/arm64, SHA256SUMS
set -euo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}
export GO

need=()
command -v nginx >/dev/null || need+=(nginx-light)
[ -f /usr/lib/nginx/modules/ngx_http_geoip2_module.so ] || need+=(libnginx-mod-http-geoip2)
command -v promtool >/dev/null || need+=(prometheus)
command -v buildah >/dev/null || need+=(buildah)
command -v file >/dev/null || need+=(file)
command -v curl >/dev/null || need+=(curl)
command -v node >/dev/null || need+=(nodejs)
command -v systemd-analyze >/dev/null || need+=(systemd)
[ -f /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ]; then
		echo "--- apt-get install ${need[*]}"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	else
		echo "missing ${need[*]} (run as root to install)" >&2
		exit 1
	fi
fi

step() { echo; echo "=== $1"; s=$SECONDS; }
took() { echo "(${1}: $((SECONDS - s)) s)"; }

step chart
(
	cd deploy/test
	$GO mod tidy && git diff --exit-code go.mod go.sum
	$GO vet ./...
	lint=$($GO env GOPATH)/bin/golangci-lint
	if [ -x "$lint" ]; then "$lint" run ./...; fi # installed by make lint
	$GO test -count=1 ./...
)
took chart

step alerts
promtool check rules deploy/prometheus/alerts.yaml
(cd deploy/prometheus && promtool test rules alerts_test.yaml)
took alerts

step edge
node --test deploy/edge/cloudflare/worker.test.mjs deploy/edge/cloudfront/viewer-request.test.mjs
bash -n deploy/edge/gcp/backend-service.sh
took edge

step systemd
deploy/test/systemd.sh
took systemd

step container
deploy/test/container.sh
took container

step nginx
deploy/test/nginx.sh 2>&1 | grep -v '^{'
took nginx

step release
deploy/test/release.sh
took release
echo
echo "test-deploy OK"
