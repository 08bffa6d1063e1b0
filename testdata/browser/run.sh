#!/usr/bin/env bash
# run.sh runs the browser suite (suite.mjs): it installs Debian's Chromium
# when it is missing (apt-get, as root on CI), the pinned npm packages from
# package-lock.json into node_modules/ here (git-ignored), builds the
# gateway binary, and drives Chromium through it. Needs node 20+, npm, go.
#
#   make test-browser
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "chromium is missing: install Debian's chromium package (apt-get install chromium) or set CHROMIUM" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq chromium >/dev/null
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	if [ "$(id -u)" != 0 ]; then
		echo "node and npm are missing" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq nodejs npm >/dev/null
fi

npm ci --no-audit --no-fund --loglevel=error

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
(cd ../.. && go build -o "$bin/consentgate" ./cmd/consentgate)

GATEWAY_BIN="$bin/consentgate" CHROMIUM="$CHROMIUM" timeout 240 node suite.mjs
