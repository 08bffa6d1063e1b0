#!/usr/bin/env bash
# bench/perhit.sh — system calls and CPU per hit, the measure of the
# performance issue: each target alone on CPU 0 (GOMAXPROCS=1, nginx one
# worker), wrk -c64 and an upstream (nginx `return 204`) on CPU 1, one denied
# GA4 hit (cookieless), rounds alternated. For queued delivery the measured
# window lasts until the upstream has received every hit the gateway
# accepted (admin /metrics: delivered = accepted, nothing spooled), so a
# deferred cost is counted.
#
#   bench/perhit.sh                  # 3 rounds of 10 s
#   ROUNDS=1 DURATION=5 bench/perhit.sh
#   TARGETS="nginx-proxy cg-queued" bench/perhit.sh
#   BASELINE_REV=v0.3.0 bench/perhit.sh   # also cg-queued-base: consentgate built from that revision
#
# System calls are counted by the kernel for the target's processes only
# (perf stat -e raw_syscalls:sys_enter and per-call tracepoints, -p PID), so
# other work on the machine does not pollute them; CPU is utime+stime from
# /proc/PID/stat. Traffic goes to 127.0.0.1 only; every process started is
# stopped on exit. Installs wrk, nginx-light and linux-perf when missing.
#
# Targets: fasthttp-204 (bench/stub), nginx-204, nginx-proxy (keepalive
# upstream), bareproxy (bench/bareproxy: HostClient.Do per request),
# cg-queued (consentgate, GA4 queued, spool on), cg-sync (delivery.ga4:
# sync), and with TLS=1 also nginx-proxy-tls and cg-queued-tls against an
# nginx upstream speaking HTTPS (self-signed, http2 on).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
TLS=${TLS:-1}
BASE=${BASE_PORT:-19000}
DRAIN_WAIT=${DRAIN_WAIT:-60}
GO=${GO:-go}
if [ -z "${TARGETS:-}" ]; then
	TARGETS="fasthttp-204 nginx-204 nginx-proxy bareproxy cg-queued cg-sync"
	if [ "$TLS" = 1 ]; then TARGETS="$TARGETS nginx-proxy-tls cg-queued-tls"; fi
fi
CALLS="read write writev readv recvfrom sendto recvmsg sendmsg epoll_wait epoll_pwait epoll_ctl futex fsync fdatasync nanosleep accept4 getsockopt setsockopt close openat sched_yield tgkill getpid"

need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need wrk wrk
need nginx nginx-light
need perf linux-perf
need curl curl
need openssl openssl

TMP=$(mktemp -d)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
BIN=$TMP/bin
mkdir -p "$BIN"
"$GO" build -o "$BIN/consentgate" ./cmd/consentgate
"$GO" build -o "$BIN/stub" ./bench/stub
"$GO" build -o "$BIN/bareproxy" ./bench/bareproxy
if [ -n "${BASELINE_REV:-}" ]; then
	mkdir -p "$TMP/base"
	git -C "$ROOT" archive "$BASELINE_REV" | tar -x -C "$TMP/base"
	(cd "$TMP/base" && "$GO" build -o "$BIN/consentgate-base" ./cmd/consentgate)
	TARGETS="$TARGETS cg-queued-base"
fi

UP=$((BASE + 1)) UPS=$((BASE + 2)) NG204=$((BASE + 3)) NGP=$((BASE + 4)) NGPS=$((BASE + 5))
FH=$((BASE + 6)) BARE=$((BASE + 7)) CGQ=$((BASE + 8)) CGS=$((BASE + 9)) CGQS=$((BASE + 10)) CGB=$((BASE + 11))

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
	-keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null

# nginx CONF_NAME CPU BODY: one nginx, one worker on CPU.
nginx_conf() {
	local name=$1 cpu=$2 body=$3
	mkdir -p "$TMP/$name"
	cat >"$TMP/$name/nginx.conf" <<EOF
worker_processes 1;
worker_cpu_affinity $([ "$cpu" = 0 ] && echo 01 || echo 10);
pid $TMP/$name/nginx.pid;
error_log $TMP/$name/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_timeout 75s;
  keepalive_requests 10000000;
  http2_max_concurrent_streams 1024;
  client_body_temp_path $TMP/$name/body;
  proxy_temp_path $TMP/$name/proxy;
  fastcgi_temp_path $TMP/$name/f; uwsgi_temp_path $TMP/$name/u; scgi_temp_path $TMP/$name/s;
  $body
}
EOF
}
start() { # start NAME CMD...: background, remember the PID
	local name=$1
	shift
	"$@" >"$TMP/$name.log" 2>&1 &
	PIDS+=($!)
	LAST=$!
}
wait_port() {
	for _ in $(seq 100); do curl -sk -o /dev/null "$1" && return 0; sleep 0.1; done
	echo "perhit: $1 did not answer" >&2
	cat "$TMP"/*.log >&2 || true
	exit 1
}

# The upstream: nginx return 204 (HTTP/1.1 and HTTPS with HTTP/2), CPU 1.
nginx_conf up 1 "server { listen 127.0.0.1:$UP; location / { return 204; } }
  server { listen 127.0.0.1:$UPS ssl http2; ssl_certificate $TMP/cert.pem; ssl_certificate_key $TMP/key.pem; location / { return 204; } }"
start up nginx -c "$TMP/up/nginx.conf" -g 'daemon off;'
nginx_conf ng204 0 "server { listen 127.0.0.1:$NG204; location / { return 204; } }"
start ng204 nginx -c "$TMP/ng204/nginx.conf" -g 'daemon off;'
PROXY_LOC="proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header X-Forwarded-For \$remote_addr;"
nginx_conf ngp 0 "upstream up { server 127.0.0.1:$UP; keepalive 256; keepalive_requests 10000000; }
  upstream ups { server 127.0.0.1:$UPS; keepalive 256; keepalive_requests 10000000; }
  server { listen 127.0.0.1:$NGP; location / { proxy_pass http://up; $PROXY_LOC } }
  server { listen 127.0.0.1:$NGPS; location / { proxy_pass https://ups; proxy_ssl_session_reuse on; $PROXY_LOC } }"
start ngp nginx -c "$TMP/ngp/nginx.conf" -g 'daemon off;'
start fh env GOMAXPROCS=1 taskset -c 0 "$BIN/stub" -listen "127.0.0.1:$FH"
FH_PID=$LAST
start bare env GOMAXPROCS=1 taskset -c 0 "$BIN/bareproxy" -listen "127.0.0.1:$BARE" -upstream "127.0.0.1:$UP"
BARE_PID=$LAST

cat >"$TMP/cg.yaml" <<EOF
upstream: "http://127.0.0.1:$UP"
path_prefix: /metrics
tags: ["G-F9XM71K45T"]
cookieless:
  secret: "consentgate-bench-secret-0123456789abcdef0123456789"
trusted_proxies: ["127.0.0.0/8"]
geo:
  headers: ["CF-IPCountry"]
log:
  level: warn
timeouts:
  drain: 0s
EOF
cg() { # cg NAME PORT [VAR=value...]
	local name=$1 port=$2 bin=${CG_BIN:-$BIN/consentgate}
	shift 2
	mkdir -p "$TMP/spool-$name"
	start "$name" env GOMAXPROCS=1 CONSENTGATE_LISTEN="127.0.0.1:$port" CONSENTGATE_ADMIN_LISTEN="127.0.0.1:$((port + 100))" \
		CONSENTGATE_DELIVERY_SPOOL_DIR="$TMP/spool-$name" SSL_CERT_FILE="$TMP/cert.pem" "$@" \
		taskset -c 0 "$bin" serve --config "$TMP/cg.yaml"
}
cg cgq "$CGQ"
CGQ_PID=$LAST
cg cgs "$CGS" CONSENTGATE_DELIVERY_GA4=sync
CGS_PID=$LAST
cg cgqs "$CGQS" CONSENTGATE_UPSTREAM="https://127.0.0.1:$UPS"
CGQS_PID=$LAST
CGB_PID=
if [ -n "${BASELINE_REV:-}" ]; then
	CG_BIN=$BIN/consentgate-base cg cgb "$CGB"
	CGB_PID=$LAST
fi

for p in $UP $NG204 $NGP $FH $BARE $CGQ $CGS $CGQS ${CGB_PID:+$CGB}; do wait_port "http://127.0.0.1:$p/"; done
wait_port "https://127.0.0.1:$UPS/"

# The hit: GA4 page_view, all denied, Germany (cookieless).
cat >"$TMP/hit.txt" <<'EOF'
GET /metrics/g/collect?v=2&tid=G-F9XM71K45T&gtm=45he5641&_p=1749196701069&gcs=G100&gcd=13p3p3p2p5l1&npa=1&dma=1&cid=1174285007.1749196701&ul=de-de&sr=1920x1080&_s=1&sid=1749196701&sct=1&seg=0&uid=u42&dl=https%3A%2F%2Fshop.example%2F%3Futm_source%3Dgoogle&dr=https%3A%2F%2Fwww.google.com%2F&dt=Home&en=page_view&_fv=1&_ss=1&tfd=1523
Host: shop.example
User-Agent: Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/136.0.0.0 Safari/537.36
Accept: */*
Accept-Language: de-DE,de;q=0.9
Referer: https://shop.example/
Cookie: _ga=GA1.1.1174285007.1749196701
CF-IPCountry: DE
EOF

pids_of() { # the processes whose CPU and system calls count
	case $1 in
	nginx-204) pgrep -f "nginx: worker process" -P "$(cat "$TMP/ng204/nginx.pid")" ;;
	nginx-proxy | nginx-proxy-tls) pgrep -f "nginx: worker process" -P "$(cat "$TMP/ngp/nginx.pid")" ;;
	fasthttp-204) echo "$FH_PID" ;;
	bareproxy) echo "$BARE_PID" ;;
	cg-queued) echo "$CGQ_PID" ;;
	cg-sync) echo "$CGS_PID" ;;
	cg-queued-tls) echo "$CGQS_PID" ;;
	cg-queued-base) echo "$CGB_PID" ;;
	esac
}
url_of() {
	case $1 in
	nginx-204) echo "http://127.0.0.1:$NG204" ;;
	nginx-proxy) echo "http://127.0.0.1:$NGP" ;;
	nginx-proxy-tls) echo "http://127.0.0.1:$NGPS" ;;
	fasthttp-204) echo "http://127.0.0.1:$FH" ;;
	bareproxy) echo "http://127.0.0.1:$BARE" ;;
	cg-queued) echo "http://127.0.0.1:$CGQ" ;;
	cg-sync) echo "http://127.0.0.1:$CGS" ;;
	cg-queued-tls) echo "http://127.0.0.1:$CGQS" ;;
	cg-queued-base) echo "http://127.0.0.1:$CGB" ;;
	esac
}
admin_of() {
	case $1 in
	cg-queued) echo "http://127.0.0.1:$((CGQ + 100))" ;;
	cg-sync) echo "http://127.0.0.1:$((CGS + 100))" ;;
	cg-queued-tls) echo "http://127.0.0.1:$((CGQS + 100))" ;;
	cg-queued-base) echo "http://127.0.0.1:$((CGB + 100))" ;;
	esac
}
metric_sum() { curl -s "$1/metrics" | awk -v n="$2" 'index($1, n) == 1 { s += $2 } END { printf "%d", s }'; }
ticks() { local s=0; for p in $1; do s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $s; }
CLK=$(getconf CLK_TCK)

# drain NAME: wait until a queued target has delivered what it accepted.
drain() {
	local admin
	admin=$(admin_of "$1")
	[ -n "$admin" ] || return 0
	for _ in $(seq $((DRAIN_WAIT * 20))); do
		local acc del drop spooled
		acc=$(metric_sum "$admin" consentgate_delivery_accepted_total)
		del=$(metric_sum "$admin" consentgate_delivery_delivered_total)
		drop=$(metric_sum "$admin" consentgate_delivery_dropped_total)
		spooled=$(metric_sum "$admin" consentgate_delivery_spool_records)
		if [ "$acc" -le $((del + drop)) ] && [ "$spooled" = 0 ]; then return 0; fi
		sleep 0.05
	done
	echo "perhit: $1 did not deliver everything within $DRAIN_WAIT s" >&2
}

# Warm every target up (connections, caches), unmeasured.
for t in $TARGETS; do wrk -t1 -c"$CONNECTIONS" -d1s -s bench/mix.lua "$(url_of "$t")" -- "$TMP/hit.txt" >/dev/null; drain "$t"; done

RES=$TMP/results.tsv
: >"$RES"
EVENTS="-e raw_syscalls:sys_enter"
for c in $CALLS; do [ -d "/sys/kernel/tracing/events/syscalls/sys_enter_$c" ] && EVENTS="$EVENTS -e syscalls:sys_enter_$c"; done
for r in $(seq "$ROUNDS"); do
	for t in $TARGETS; do
		pids=$(pids_of "$t" | paste -sd,)
		before=$(ticks "${pids//,/ }")
		# shellcheck disable=SC2086
		perf stat -x, -o "$TMP/perf.$t.$r" $EVENTS -p "$pids" &
		perfpid=$!
		sleep 0.2
		start_ns=$(date +%s%N)
		taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s bench/mix.lua "$(url_of "$t")" -- "$TMP/hit.txt" >"$TMP/wrk.$t.$r"
		drain "$t"
		end_ns=$(date +%s%N)
		kill -INT "$perfpid"
		wait "$perfpid" || true
		after=$(ticks "${pids//,/ }")
		hits=$(awk '/requests in/ { print $1 }' "$TMP/wrk.$t.$r")
		non2xx=$(awk '/Non-2xx/ { print $NF }' "$TMP/wrk.$t.$r")
		total=$(awk -F, '$3 == "raw_syscalls:sys_enter" { print $1 }' "$TMP/perf.$t.$r")
		secs=$(awk -v a="$start_ns" -v b="$end_ns" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$r" "$hits" "$secs" "$((after - before))" "$total" "${non2xx:-0}" >>"$RES"
		awk -F, -v t="$t" -v h="$hits" '$3 ~ /^syscalls:sys_enter_/ && $1 > 0 { sub("syscalls:sys_enter_", "", $3); printf "%s\t%s\t%.3f\n", t, $3, $1 / h }' \
			"$TMP/perf.$t.$r" >>"$TMP/calls.tsv"
	done
done

echo "## System calls and CPU per hit ($ROUNDS rounds x ${DURATION}s, wrk -c$CONNECTIONS, one denied GA4 hit; medians, ranges in brackets)"
echo
echo "| target | req/s | CPU s per 100k hits | system calls per hit | non-2xx |"
echo "|---|---:|---:|---:|---:|"
awk -F'\t' -v clk="$CLK" '
function med(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t } return a[int((n + 1) / 2)] }
function rng(a, n,   i, lo, hi) { lo = a[1]; hi = a[1]; for (i = 2; i <= n; i++) { if (a[i] < lo) lo = a[i]; if (a[i] > hi) hi = a[i] } return sprintf("%.2f–%.2f", lo, hi) }
{ n[$1]++; k = n[$1]; rps[$1, k] = $3 / $4; cpu[$1, k] = $5 / clk * 100000 / $3; sc[$1, k] = $6 / $3; bad[$1] += $7; if (!($1 in seen)) { seen[$1] = 1; order[++m] = $1 } }
END {
	for (i = 1; i <= m; i++) { t = order[i]
		for (k = 1; k <= n[t]; k++) { a[k] = rps[t, k]; b[k] = cpu[t, k]; c[k] = sc[t, k] }
		ra = sprintf("%.0f", med(a, n[t])); rb = med(b, n[t]); rc = med(c, n[t])
		for (k = 1; k <= n[t]; k++) { b[k] = cpu[t, k]; c[k] = sc[t, k] }
		printf "| %s | %s | %.2f (%s) | %.2f (%s) | %d |\n", t, ra, rb, rng(b, n[t]), rc, rng(c, n[t]), bad[t]
		R[t] = rb; S[t] = rc; Q[t] = ra
	}
	if (("nginx-proxy" in R) && ("cg-queued" in R)) printf "| *cg-queued / nginx-proxy* | %.2fx | %.2fx | %.2fx | |\n", Q["cg-queued"] / Q["nginx-proxy"], R["cg-queued"] / R["nginx-proxy"], S["cg-queued"] / S["nginx-proxy"]
	if (("nginx-proxy" in R) && ("cg-queued-base" in R)) printf "| *cg-queued-base / nginx-proxy* | %.2fx | %.2fx | %.2fx | |\n", Q["cg-queued-base"] / Q["nginx-proxy"], R["cg-queued-base"] / R["nginx-proxy"], S["cg-queued-base"] / S["nginx-proxy"]
	if (("nginx-proxy-tls" in R) && ("cg-queued-tls" in R)) printf "| *cg-queued-tls / nginx-proxy-tls* | %.2fx | %.2fx | %.2fx | |\n", Q["cg-queued-tls"] / Q["nginx-proxy-tls"], R["cg-queued-tls"] / R["nginx-proxy-tls"], S["cg-queued-tls"] / S["nginx-proxy-tls"]
}' "$RES"
echo
echo "### Where the system calls go (per hit, mean over rounds)"
echo
awk -F'\t' '{ s[$1, $2] += $3; n[$1, $2]++; if (!($1 in T)) { T[$1] = 1; to[++m] = $1 } if (!($2 in C)) { C[$2] = 1; co[++k] = $2 } }
END {
	printf "| call |"; for (i = 1; i <= m; i++) printf " %s |", to[i]; printf "\n|---|"; for (i = 1; i <= m; i++) printf "---:|"; printf "\n"
	for (j = 1; j <= k; j++) { printf "| %s |", co[j]; for (i = 1; i <= m; i++) { v = n[to[i], co[j]] ? s[to[i], co[j]] / n[to[i], co[j]] : 0; printf " %.2f |", v } printf "\n" }
}' "$TMP/calls.tsv"
echo
echo "### Queued delivery: how many hits share a system call (whole run, warm-up included)"
echo
echo "| target | hits accepted | per spool write | per upstream write | upstream reads per hit |"
echo "|---|---:|---:|---:|---:|"
for t in $TARGETS; do
	admin=$(admin_of "$t")
	[ -n "$admin" ] || continue
	acc=$(metric_sum "$admin" consentgate_delivery_accepted_total)
	[ "$acc" -gt 0 ] || continue
	sw=$(metric_sum "$admin" consentgate_delivery_spool_writes)
	uw=$(metric_sum "$admin" consentgate_delivery_upstream_writes_total)
	un=$(metric_sum "$admin" consentgate_delivery_upstream_written_total)
	ur=$(metric_sum "$admin" consentgate_delivery_upstream_reads_total)
	awk -v t="$t" -v a="$acc" -v sw="$sw" -v uw="$uw" -v un="$un" -v ur="$ur" \
		'BEGIN { printf "| %s | %d | %.1f | %.1f | %.2f |\n", t, a, sw ? a / sw : 0, uw ? un / uw : 0, un ? ur / un : 0 }'
done
if [ -n "${KEEP:-}" ]; then cp "$RES" "$TMP/calls.tsv" "$KEEP/"; fi
