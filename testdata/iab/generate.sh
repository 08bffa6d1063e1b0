#!/usr/bin/env bash
# generate.sh rebuilds the IAB reference vectors that consentmode's tests
# read: tcf-vectors.json (@iabtechlabtcf/core) and gpp-vectors.json
# (@iabgpp/cmpapi). It installs the pinned libraries from package-lock.json
# into node_modules/ here (git-ignored) and needs node 20+ and npm; nothing
# else is fetched. The output is deterministic: running it twice changes
# nothing.
#
#   testdata/iab/generate.sh && go test ./consentmode -run 'TC|GPP'
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

npm ci --no-audit --no-fund --loglevel=error

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
node gen-tcf.mjs >"$tmp/tcf-vectors.json"
node gen-gpp.mjs >"$tmp/gpp-vectors.json"
mv "$tmp/tcf-vectors.json" "$tmp/gpp-vectors.json" .

echo "wrote $(pwd)/tcf-vectors.json and gpp-vectors.json"
