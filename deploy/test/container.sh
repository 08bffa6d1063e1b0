#!/usr/bin/env bash
# Container test (make test-deploy): what can be checked of the image
# without pulling base images.
#
# 1. The binary is static (no ELF interpreter), built as the Dockerfile does.
# 2. It runs as uid/gid 65532 in an empty root holding only itself and the
#    CA bundle, mounted read-only, with the spool on a writable volume; a
#    real-shaped hit goes through it to a fake upstream.
# 3. If buildah is installed, the Dockerfile's runtime stage (FROM scratch)
#    is built for real — with the binary from step 1 standing in for the
#    build stage, whose golang base image cannot be pulled offline — its
#    config is inspected, and its own filesystem is run as in step 2.
#
# Needs root (mount namespaces, chroot), file, curl; buildah optional.
set -euo pipefail
cd "$(dirname "$0")/../.."

GO=${GO:-go}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
PUB=${PUB:-18180}
ADM=${ADM:-18190}
UP=${UP:-18181}
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ -n "${ctr:-}" ]; then buildah --storage-driver vfs umount "$ctr" >/dev/null 2>&1 || true; buildah --storage-driver vfs rm "$ctr" >/dev/null 2>&1 || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "--- static binary"
CGO_ENABLED=0 $GO build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o "$work/consentgate" ./cmd/consentgate
(cd deploy/test && $GO build -o "$work/fakeupstream" ./fakeupstream)
desc=$(file -b "$work/consentgate")
echo "$desc"
case "$desc" in
*"statically linked"*) ;;
*) fail "not a static binary: $desc" ;;
esac
case "$desc" in *interpreter*) fail "has an ELF interpreter: $desc" ;; esac

"$work/fakeupstream" -listen "127.0.0.1:$UP" >"$work/received.jsonl" &
pids+=($!)

# The environment the Dockerfile sets (ENV lines), as the image would run.
image_env=()
while read -r kv; do
	image_env+=("$kv")
done < <(sed -n 's/^ENV \([A-Z_]*=[^ ]*\)$/\1/p' Dockerfile)

# run_readonly ROOTFS: serve from ROOTFS mounted read-only, as 65532, the
# spool volume writable; send hits; stop it. Asserts as it goes.
run_readonly() {
	local root=$1 spool="$work/spool-volume"
	rm -rf "$spool" && mkdir -p "$spool" && chown 65532:65532 "$spool"
	: >"$work/received.jsonl"
	# A private mount namespace: root bind-mounted read-only, the volume on top.
	unshare --mount --fork -- sh -c '
		set -e
		root=$1 spool=$2 chroot=$3; shift 3
		mount --make-rprivate /
		mount --bind "$root" "$root"
		mount -o remount,bind,ro "$root"
		mount --bind "$spool" "$root/var/lib/consentgate"
		exec env -i "$@" "$chroot" --userspec=65532:65532 "$root" /consentgate serve
	' sh "$root" "$spool" "$(command -v chroot)" \
		"${image_env[@]}" \
		CONSENTGATE_LISTEN="127.0.0.1:$PUB" CONSENTGATE_ADMIN_LISTEN="127.0.0.1:$ADM" \
		CONSENTGATE_UPSTREAM="http://127.0.0.1:$UP" CONSENTGATE_TAGS=G-SMOKE1 \
		CONSENTGATE_COOKIELESS_SECRET=container-test-secret-0123456789 \
		CONSENTGATE_TRUSTED_PROXIES=127.0.0.1/32 CONSENTGATE_GEO_HEADERS=X-Forwarded-CountryRegion \
		CONSENTGATE_TIMEOUTS_DRAIN=0s CONSENTGATE_LOG_DECISIONS_OUTPUT=stderr \
		2>"$work/gateway.log" &
	local sh=$!
	pids+=($sh)
	local ok=
	for _ in $(seq 100); do
		if curl -fsS "http://127.0.0.1:$PUB/readyz" >/dev/null 2>&1; then ok=1 && break; fi
		kill -0 "$sh" 2>/dev/null || break
		sleep 0.1
	done
	[ -n "$ok" ] || { cat "$work/gateway.log" >&2; fail "gateway did not become ready"; }
	curl -fsS "http://127.0.0.1:$PUB/healthz" >/dev/null || fail "/healthz"

	local pid
	pid=$(pgrep -f -n "^/consentgate serve" || true)
	[ -n "$pid" ] || fail "no gateway process"
	grep -qE '^Uid:\s+65532\s+65532\s+65532\s+65532' "/proc/$pid/status" || fail "gateway does not run as uid 65532: $(grep Uid "/proc/$pid/status")"
	grep -qE '^Gid:\s+65532\s+65532' "/proc/$pid/status" || fail "gateway does not run as gid 65532"
	# Its root is read-only; the spool volume is not.
	awk '$5 == "/" {print $6}' "/proc/$pid/mountinfo" | grep -q '^ro' || fail "root is not read-only: $(awk '$5 == "/"' "/proc/$pid/mountinfo")"
	awk '$5 == "/var/lib/consentgate" {print $6}' "/proc/$pid/mountinfo" | grep -q '^rw' || fail "spool volume is not writable"
	[ -n "$(ls -A "$spool/spool" 2>/dev/null)" ] || fail "the gateway wrote nothing into the spool volume: $(ls -laR "$spool")"
	echo "runs as 65532:65532, root read-only, spool written to the volume: $(cd "$spool/spool" && ls | tr '\n' ' ')"

	# A denied hit from Germany: a cookieless ping leaves, without the client id.
	code=$(curl -s -o /dev/null -w '%{http_code}' -H 'X-Forwarded-CountryRegion: DE' -H 'User-Agent: Mozilla/5.0' \
		"http://127.0.0.1:$PUB/g/collect?v=2&tid=G-SMOKE1&gcs=G100&gcd=13p3p3p2p5l1&cid=1174285007.1749196701&en=page_view")
	[ "$code" -lt 300 ] || fail "hit answered $code"
	# A granted hit from the US: forwarded with its id.
	curl -s -o /dev/null -H 'X-Forwarded-CountryRegion: US' \
		"http://127.0.0.1:$PUB/g/collect?v=2&tid=G-SMOKE1&gcs=G111&gcd=13r3r3r2r5l1&cid=555.666&en=page_view"
	for _ in $(seq 50); do [ "$(wc -l <"$work/received.jsonl")" -ge 2 ] && break; sleep 0.1; done
	grep -q '"uri":"/g/collect?' "$work/received.jsonl" || fail "upstream received no hit: $(cat "$work/received.jsonl")"
	grep -q '1174285007' "$work/received.jsonl" && fail "the denied hit's client id reached the upstream"
	grep -q 'cid=555.666' "$work/received.jsonl" || fail "the granted hit was not forwarded: $(cat "$work/received.jsonl")"
	echo "upstream received $(wc -l <"$work/received.jsonl") hits; the denied one without its client id"

	kill -TERM "$pid"
	wait "$sh" || fail "gateway exited with $?: $(tail -5 "$work/gateway.log")"
	grep -q '"msg":"stopped"' "$work/gateway.log" || fail "no clean stop: $(tail -5 "$work/gateway.log")"
	echo "stopped cleanly on SIGTERM"
}

echo "--- empty root: the binary and the CA bundle only"
ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] || fail "$ca missing (apt-get install ca-certificates)"
root="$work/rootfs"
mkdir -p "$root/etc/ssl/certs" "$root/var/lib/consentgate/spool"
cp "$work/consentgate" "$root/consentgate"
cp "$ca" "$root/etc/ssl/certs/"
chown -R 65532:65532 "$root/var/lib/consentgate"
run_readonly "$root"

if ! command -v buildah >/dev/null; then
	echo "--- buildah not installed: image build skipped"
	exit 0
fi
echo "--- buildah: the Dockerfile's runtime stage"
ctx="$work/ctx"
mkdir -p "$ctx/out/spool/spool" "$ctx/etc/ssl/certs"
cp "$work/consentgate" "$ctx/out/consentgate"
cp "$ca" "$ctx/etc/ssl/certs/"
# Everything from the last FROM on, with COPY --from=build reading the
# build stage's output from the context instead.
awk '/^FROM /{buf=""} {buf=buf $0 "\n"} END{printf "%s", buf}' Dockerfile |
	sed 's#^COPY --from=build #COPY #' >"$ctx/Containerfile"
head -1 "$ctx/Containerfile" | grep -qx 'FROM scratch' || fail "the Dockerfile's last stage is not FROM scratch"
buildah --storage-driver vfs bud --quiet --layers=false -f "$ctx/Containerfile" -t consentgate-test:smoke "$ctx" >/dev/null
cfg=$(buildah --storage-driver vfs inspect --format '{{.OCIv1.Config.User}}|{{.OCIv1.Config.Entrypoint}}|{{.OCIv1.Config.Cmd}}|{{.Docker.Config.Healthcheck}}' consentgate-test:smoke)
echo "image config: $cfg"
case "$cfg" in
"65532:65532|[/consentgate]|[serve]|<nil>") ;;
*) fail "image config $cfg, want user 65532:65532, entrypoint /consentgate serve, no healthcheck" ;;
esac
ctr=$(buildah --storage-driver vfs from consentgate-test:smoke)
mnt=$(buildah --storage-driver vfs mount "$ctr")
files=$(cd "$mnt" && find . -mindepth 1 \( -type f -o -type l \) | sort | tr '\n' ' ')
echo "image files: $files"
[ "$files" = "./consentgate ./etc/ssl/certs/ca-certificates.crt " ] || fail "unexpected files in the image: $files"
[ "$(stat -c %u:%g "$mnt/var/lib/consentgate/spool")" = 65532:65532 ] || fail "spool dir not owned by 65532"
run_readonly "$mnt"
buildah --storage-driver vfs rmi -f consentgate-test:smoke >/dev/null 2>&1 || true
echo "container test OK"
