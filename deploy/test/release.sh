#!/usr/bin/env bash
# Checks make release: both static binaries, their checksums and the
# version they report.
set -euo pipefail
cd "$(dirname "$0")/../.."
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
make -s release VERSION=v0.0.0-test DIST="$t" >/dev/null
(cd "$t" && sha256sum -c SHA256SUMS) || fail "checksums"
for arch in amd64 arm64; do
	f="$t/consentgate-v0.0.0-test-linux-$arch"
	d=$(file -b "$f")
	case "$d" in *"statically linked"*) ;; *) fail "$f is not static: $d" ;; esac
	case "$arch:$d" in amd64:*x86-64* | arm64:*aarch64*) ;; *) fail "$f is not $arch: $d" ;; esac
done
[ "$("$t/consentgate-v0.0.0-test-linux-amd64" version | head -n 1)" = "consentgate v0.0.0-test" ] || fail "version: $("$t/consentgate-v0.0.0-test-linux-amd64" version)"
"$t/consentgate-v0.0.0-test-linux-amd64" version | grep -q '^built: ' || fail "version names no build date"
make -s release VERSION=not-semver DIST="$t/x" >/dev/null 2>&1 && fail "make release accepted a non-semantic version"
echo "release OK: $(cd "$t" && ls consentgate-* | tr '\n' ' ')"
