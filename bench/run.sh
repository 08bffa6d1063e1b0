#!/usr/bin/env bash
# bench/run.sh — the load benchmark behind `make bench-load`: consentgate
# (GA4 queued, GA4 sync, queued + pipelined delivery, dry run, decision log)
# against nginx as a plain proxy, over loopback, in front of the same
# Google-like upstream stub, and once more in front of a stub with 40 ms of
# latency. docs/benchmarks.md has the method and the results of a real run.
#
#   make bench-load            # full run (about 20 minutes on a quiet machine)
#   QUICK=1 make bench-load    # smoke run (about 3 minutes), numbers not for quoting
#
# What it does:
#   - installs wrk, nginx-light and curl from Debian if missing (apt-get;
#     sudo when not root);
#   - builds consentgate, the stub (bench/stub), the fixed-rate generator
#     (bench/load) and the idle-connection holder (bench/conns) into bench/.bin;
#   - pins the proxy under test to CPU 0 with one worker (GOMAXPROCS=1,
#     nginx worker_processes 1) and the load generator and the stubs to CPU 1;
#   - every consentgate it starts has its own spool directory under the
#     run's temporary directory (CONSENTGATE_DELIVERY_SPOOL_DIR);
#   - targets: stub direct, nginx, consentgate (GA4 queued: delivery.ga4
#     queue, the default), consentgate-sync (delivery.ga4: sync, the
#     behaviour before queued delivery), consentgate-pipelined (queued,
#     delivery.pipeline_conns: 4), dry run, decision log, bare fasthttp proxy;
#   - saturation: wrk (bench/mix.lua over bench/hits.txt), same connections
#     and duration for every target, targets alternated A B C D, A B C D, ...;
#   - fixed rate: bench/load at RATE_FRACTION % of nginx's median maximum,
#     the same rate for every target: CPU seconds per 100k requests of the
#     proxy process and p50/p99 latency;
#   - honest accounting of queued delivery: a consentgate answers GA4 hits
#     before delivering them, so after every run against it the script
#     waits (at most DRAIN_WAIT s) until its admin /metrics shows queue
#     depth, in-flight and spool records 0 on every upstream. That drain
#     time counts in the run's seconds (so in req/s) and the process's CPU
#     ticks are read after it; the run's extra column records queued
#     (accepted_total), delivered (delivered_total), undelivered (their
#     difference), dropped and drain seconds;
#   - upstream with latency: a second stub (bench/stub -delay LAT_DELAY, on
#     CPU 1), a second nginx server block (keepalive 1024) and consentgate
#     (queued, sync, pipelined) in front of it, all at the fixed rate
#     LAT_RATE over LAT_CONNECTIONS connections (browsers): p50/p99 as the
#     browser sees it, overall and for the GA4 hits alone (bench/load
#     -split), and CPU seconds per 100k requests, drain included;
#   - scripts: consentgate's script cache against nginx serving the same
#     bytes from disk (gzip_static), with and without Accept-Encoding: gzip;
#   - memory: VmRSS of consentgate idle and with IDLE_CONNS idle keep-alive
#     connections (nginx too, for reference); peak RSS under load;
#   - optional CPU and allocation profiles of consentgate at the fixed rate;
#   - prints one markdown summary (medians, ratios consentgate/nginx,
#     targets met or missed, drain and undelivered hits) and writes raw
#     results to bench/results/.
#
# Only 127.0.0.1 is targeted. Every run is bounded (-d / -duration, plus
# timeouts), the whole script by MAX_SECONDS, and every process it starts
# is stopped by PID on exit, error or Ctrl-C.
#
# Knobs (environment):
#   QUICK=1             smoke run: 1 round, short runs, 2,000 idle connections
#   ROUNDS=3            rounds of each A/B series
#   SAT_DURATION=10     seconds of each saturation run (wrk)
#   RATE_DURATION=10    seconds of each fixed-rate run (bench/load)
#   SCRIPT_DURATION=5   seconds of each script run (wrk)
#   WARMUP=2            seconds of unmeasured load per target before the rounds
#   CONNECTIONS=64      client connections of every load run
#   RATE=auto           fixed request rate; auto = RATE_FRACTION % of nginx's median max
#   RATE_FRACTION=50
#   DRAIN_WAIT=60       at most this many seconds to wait for a queued target to deliver everything after a run
#   LAT_DELAY=40ms      latency of the second stub
#   LAT_CONNECTIONS=1024  client connections of the latency runs (at 40 ms per proxied answer
#                       a connection carries at most 25 req/s through nginx)
#   LAT_RATE=auto       fixed rate of the latency runs; auto = RATE, or RATE_FRACTION % of what
#                       min(LAT_CONNECTIONS, nginx's keepalive pool) connections carry at LAT_DELAY if lower
#   IDLE_CONNS=10000    idle keep-alive connections of the memory test
#   LOG_RUNS=1          also run consentgate with its decision log on (to /dev/null)
#   REFERENCE=1         also run bench/bareproxy, a bare fasthttp proxy (the platform's own cost)
#   PROFILE=1           collect pprof CPU/allocs profiles of consentgate (0 in QUICK)
#   BASE_PORT=18000     ports BASE_PORT+80..+102 and +110..+122 on 127.0.0.1 are used
#   QUIET_WAIT=30       seconds to wait for other load on the machine to stop before a run
#   NOISE_PCT=10        a run during which other processes used more than this % of a CPU ...
#   RETRIES=3           ... is repeated, up to this many attempts (the last one is kept, flagged)
#   MAX_SECONDS=2400    hard limit of the whole script
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BIN=$ROOT/bench/.bin
QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
	: "${ROUNDS:=1}" "${SAT_DURATION:=3}" "${RATE_DURATION:=3}" "${SCRIPT_DURATION:=2}" "${WARMUP:=1}"
	: "${IDLE_CONNS:=2000}" "${PROFILE:=0}" "${LAT_CONNECTIONS:=256}"
else
	: "${ROUNDS:=3}" "${SAT_DURATION:=10}" "${RATE_DURATION:=10}" "${SCRIPT_DURATION:=5}" "${WARMUP:=2}"
	: "${IDLE_CONNS:=10000}" "${PROFILE:=1}" "${LAT_CONNECTIONS:=1024}"
fi
: "${CONNECTIONS:=64}" "${RATE:=auto}" "${RATE_FRACTION:=50}" "${LOG_RUNS:=1}" "${BASE_PORT:=18000}"
: "${QUIET_WAIT:=30}" "${MAX_SECONDS:=2400}" "${REFERENCE:=1}" "${NOISE_PCT:=10}" "${RETRIES:=3}"
: "${DRAIN_WAIT:=60}" "${LAT_DELAY:=40ms}" "${LAT_RATE:=auto}"
GO=${GO:-go}

STUB_PORT=$((BASE_PORT + 100))   # the upstream stub (CPU 1)
STUB0_PORT=$((BASE_PORT + 101))  # a second stub on CPU 0: the stub-direct target
CG_PORT=$((BASE_PORT + 80))      # consentgate enforcing; admin +90
NGINX_PORT=$((BASE_PORT + 81))
DRY_PORT=$((BASE_PORT + 82))     # consentgate dry run; admin +92
LOG_PORT=$((BASE_PORT + 83))     # consentgate enforcing with the decision log on; admin +93
RSS_PORT=$((BASE_PORT + 84))     # a fresh consentgate for the memory test; admin +94
BARE_PORT=$((BASE_PORT + 85))    # bench/bareproxy, the reference
SYNC_PORT=$((BASE_PORT + 86))    # consentgate with delivery.ga4: sync; admin +96
PIPE_PORT=$((BASE_PORT + 87))    # consentgate with delivery.pipeline_conns: 4; admin +97
LSTUB_PORT=$((BASE_PORT + 102))  # the stub with LAT_DELAY of latency (CPU 1)
LCG_PORT=$((BASE_PORT + 110))    # consentgate (queued) in front of it; admin +120
LSYNC_PORT=$((BASE_PORT + 111))  # consentgate-sync in front of it; admin +121
LPIPE_PORT=$((BASE_PORT + 112))  # consentgate-pipelined in front of it; admin +122
LNGINX_PORT=$((BASE_PORT + 113)) # nginx (same process, second server block) in front of it

# Progress goes to the script's own stderr, also while a load run's output
# is redirected to a file (a trap may fire then).
exec {LOGFD}>&2
log() { printf '%s bench: %s\n' "$(date +%H:%M:%S)" "$*" >&"$LOGFD"; }
die() {
	log "error: $*"
	exit 1
}

# ---------------------------------------------------------------- processes

PIDS=()    # every long-running process we started
CUR_PID="" # the load run in progress
WATCHDOG=""
TMP=""
RES=""

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	[[ -n $CUR_PID ]] && kill -TERM "$CUR_PID" 2>/dev/null || true
	local pid
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	local i alive
	for i in $(seq 1 50); do
		alive=0
		for pid in "${PIDS[@]}" $CUR_PID; do kill -0 "$pid" 2>/dev/null && alive=1; done
		((alive)) || break
		sleep 0.1
	done
	for pid in "${PIDS[@]}" $CUR_PID; do kill -KILL "$pid" 2>/dev/null || true; done
	[[ -n $WATCHDOG ]] && kill -TERM "$WATCHDOG" 2>/dev/null || true
	if [[ -n $TMP && -d $TMP ]]; then
		if [[ -n $RES && -d $RES ]]; then
			mkdir -p "$RES/logs"
			cp "$TMP"/*.log "$RES/logs/" 2>/dev/null || true
			cp "$TMP"/nginx.conf "$TMP"/consentgate.yaml "$RES/logs/" 2>/dev/null || true
		fi
		rm -rf "$TMP"
	fi
	if ((rc != 0)); then log "failed (exit $rc)${RES:+; partial results in $RES}"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CMD... runs CMD in the background with its output in
# $TMP/NAME.log and records its PID (taskset and env exec, so $! is the
# program itself).
start() {
	local name=$1
	shift
	"$@" >"$TMP/$name.log" 2>&1 &
	PIDS+=("$!")
	LAST_PID=$!
}

# port_free PORT fails if something listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_http URL [PID]: until URL answers (any status), at most 15 s.
wait_http() {
	local i
	for i in $(seq 1 150); do
		if curl -s -o /dev/null --max-time 1 "$1"; then return 0; fi
		if [[ -n ${2:-} ]] && ! kill -0 "$2" 2>/dev/null; then return 1; fi
		sleep 0.1
	done
	return 1
}

# ticks PID...: utime+stime of the processes, in clock ticks.
ticks() {
	local t=0 pid s
	for pid in "$@"; do
		s=$(cut -d' ' -f14,15 "/proc/$pid/stat" 2>/dev/null) || continue
		t=$((t + ${s% *} + ${s#* }))
	done
	echo "$t"
}

# cpustat: "busy0 total0 busy1 total1" from /proc/stat, in ticks.
cpustat() {
	awk '$1=="cpu0"||$1=="cpu1" {busy=$2+$3+$4+$7+$8+$9; tot=busy+$5+$6; printf "%d %d ", busy, tot} END {print ""}' /proc/stat
}

# child_ticks sets CHILD_TICKS to the user+sys time of this shell's
# waited-for children (and theirs), in ticks. `times` must run in this
# shell, not in a $(...) subshell.
child_ticks() {
	times >"$TMP/times.txt"
	CHILD_TICKS=$(awk -v hz="$HZ" 'NR==2 {
		split($1, u, /[ms]/); split($2, s, /[ms]/)
		printf "%d\n", ((u[1]*60 + u[2]) + (s[1]*60 + s[2])) * hz + 0.5 }' "$TMP/times.txt")
}

# children_of PID: the PIDs whose parent is PID (without procps).
children_of() {
	local f line rest
	for f in /proc/[0-9]*/stat; do
		read -r line 2>/dev/null <"$f" || continue
		rest=${line##*) }
		set -- $rest
		[[ $2 == "$CHILD_OF" ]] && { f=${f#/proc/}; echo "${f%/stat}"; }
	done
	return 0
}

# wait_quiet: until both CPUs are (nearly) idle for a second, at most
# QUIET_WAIT seconds, so that other work on the machine does not end up
# in a measurement. Prints nothing; logs when it has to wait.
wait_quiet() {
	local waited=0 a b busy tot
	while :; do
		a=($(cpustat))
		sleep 1
		b=($(cpustat))
		busy=$(((b[0] - a[0]) + (b[2] - a[2])))
		tot=$(((b[1] - a[1]) + (b[3] - a[3])))
		if ((tot == 0 || busy * 100 < tot * 8)); then return 0; fi
		if ((waited == 0)); then log "other load on the machine ($((busy * 100 / tot))% busy); waiting up to ${QUIET_WAIT}s"; fi
		waited=$((waited + 1))
		if ((waited >= QUIET_WAIT)); then
			log "machine still busy; measuring anyway (the run is flagged)"
			return 0
		fi
	done
}

# bounded CMD...: runs a load command in the background (so that Ctrl-C
# and the watchdog reach it), bounded by timeout, and waits for it.
bounded() {
	local limit=$1
	shift
	timeout -k 5 "$limit" "$@" &
	CUR_PID=$!
	local rc=0
	wait "$CUR_PID" || rc=$?
	CUR_PID=""
	return "$rc"
}

# ---------------------------------------------------------------- summary

# XV defines xv(KEY) for the awk expressions below: the value of KEY=value
# in the extra column (11) of a run, "nan" when it has none.
XV='function xv(k,  a, i, n, kv) { n = split($11, a, ","); for (i = 1; i <= n; i++) { split(a[i], kv, "="); if (kv[1] == k && kv[2] != "") return kv[2] } return "nan" }'

# median FILE TARGET COLUMN-EXPR: median over rounds of an awk expression
# (runs where it is nan left out).
median() {
	[[ -f $1 ]] || { echo nan; return; }
	awk -F'\t' -v t="$2" "$XV"' $1==t { x = '"$3"'; if (x != "nan" && x != "") print x }' "$1" | sort -g | awk '{ v[NR]=$1 } END {
		if (NR == 0) { print "nan"; exit }
		if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2] + v[NR/2+1]) / 2 }'
}

# xsum FILE TARGET KEY: the sum over rounds of KEY in the extra column
# ("nan" when no run has it); xcount FILE TARGET KEY VALUE: how many runs
# have KEY=VALUE.
xsum() {
	[[ -f $1 ]] || { echo nan; return; }
	awk -F'\t' -v t="$2" -v k="$3" "$XV"' $1==t { x = xv(k); if (x != "nan") { s += x; n++ } } END { if (n) print s; else print "nan" }' "$1"
}
xcount() {
	[[ -f $1 ]] || { echo 0; return; }
	awk -F'\t' -v t="$2" -v k="$3" -v want="$4" "$XV"' $1==t && xv(k) == want { n++ } END { print n + 0 }' "$1"
}

# pratio FILE EXPR A B: median over rounds of (EXPR of A) / (EXPR of B),
# pairing the runs of the same round.
pratio() {
	[[ -f $1 ]] || { echo nan; return; }
	awk -F'\t' -v a="$3" -v b="$4" "$XV"' $1==a { va[$2] = '"$2"' } $1==b { vb[$2] = '"$2"' }
		END { for (r in va) if ((r in vb) && va[r] != "nan" && vb[r] != "nan" && vb[r] != 0) print va[r] / vb[r] }' "$1" | sort -g | awk '{ v[NR]=$1 } END {
		if (NR == 0) { print "nan"; exit }
		if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2] + v[NR/2+1]) / 2 }'
}

# summarize prints the markdown summary of the results in $RES (and
# writes it to $RES/summary.md); `bench/run.sh summary DIR` re-prints it.
summarize() {
	# shellcheck disable=SC1091
	source "$RES/params.env"
	local RPS='$3/$4' CPU100K='$7/'"$HZ"'*100000/$3'

	f1() { awk -v x="$1" 'BEGIN { if (x == "nan" || x == "") print "–"; else printf "%.0f", x }'; }
	f2() { awk -v x="$1" 'BEGIN { if (x == "nan" || x == "") print "–"; else printf "%.2f", x }'; }
	ms() { awk -v x="$1" 'BEGIN { if (x == "nan" || x == "") print "–"; else printf "%.2f", x / 1000 }'; }
	ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b == 0) print "–"; else printf "%.2fx", a / b }'; }
	# verdict: which CPU ran out first in a saturation run.
	verdict() {
		awk -v c0="$1" -v c1="$2" -v pu="$3" 'BEGIN {
			if (pu >= 95) print "proxy (CPU 0)"; else if (c1 >= 95) print "load generator + stub (CPU 1)"; else print "neither (latency-bound)" }'
	}

	local -A S_RPS S_P50 S_P99 S_CPU S_C0 S_C1 S_PU F_RPS F_P50 F_P99 F_CPU F_OTHER S_OTHER S_DRAIN F_DRAIN UNDEL TMO
	local TARGETS t n c enc noisy errs undel_runs tmo_runs
	local FILES=("$RES/sat.tsv" "$RES/fixed.tsv" "$RES/script.tsv")
	[[ -f $RES/lat.tsv ]] && FILES+=("$RES/lat.tsv")
	mapfile -t TARGETS < <(awk -F'\t' '!seen[$1]++ {print $1}' "$RES/sat.tsv")
	for t in "${TARGETS[@]}"; do
		S_RPS[$t]=$(median "$RES/sat.tsv" "$t" "$RPS")
		S_P50[$t]=$(median "$RES/sat.tsv" "$t" '$5')
		S_P99[$t]=$(median "$RES/sat.tsv" "$t" '$6')
		S_CPU[$t]=$(median "$RES/sat.tsv" "$t" "$CPU100K")
		S_C0[$t]=$(median "$RES/sat.tsv" "$t" '$8')
		S_C1[$t]=$(median "$RES/sat.tsv" "$t" '$9')
		S_PU[$t]=$(median "$RES/sat.tsv" "$t" '$7/'"$HZ"'/$4*100')
		S_OTHER[$t]=$(median "$RES/sat.tsv" "$t" '$10')
		F_RPS[$t]=$(median "$RES/fixed.tsv" "$t" "$RPS")
		F_P50[$t]=$(median "$RES/fixed.tsv" "$t" '$5')
		F_P99[$t]=$(median "$RES/fixed.tsv" "$t" '$6')
		F_CPU[$t]=$(median "$RES/fixed.tsv" "$t" "$CPU100K")
		F_OTHER[$t]=$(median "$RES/fixed.tsv" "$t" '$10')
		S_DRAIN[$t]=$(median "$RES/sat.tsv" "$t" 'xv("drain_s")')
		F_DRAIN[$t]=$(median "$RES/fixed.tsv" "$t" 'xv("drain_s")')
		UNDEL[$t]=$(awk -v a="$(xsum "$RES/sat.tsv" "$t" undelivered)" -v b="$(xsum "$RES/fixed.tsv" "$t" undelivered)" \
			'BEGIN { if (a == "nan" && b == "nan") print "nan"; else print (a == "nan" ? 0 : a) + (b == "nan" ? 0 : b) }')
		TMO[$t]=$(($(xcount "$RES/sat.tsv" "$t" drain timeout) + $(xcount "$RES/fixed.tsv" "$t" drain timeout)))
	done
	local -A L_RPS L_P50 L_P99 L_GP50 L_GP99 L_OP50 L_OP99 L_CPU L_DRAIN
	local LAT_TARGETS=(nginx-lat consentgate-lat consentgate-lat-sync consentgate-lat-pipelined)
	for t in "${LAT_TARGETS[@]}"; do
		L_RPS[$t]=$(median "$RES/lat.tsv" "$t" "$RPS")
		L_P50[$t]=$(median "$RES/lat.tsv" "$t" '$5')
		L_P99[$t]=$(median "$RES/lat.tsv" "$t" '$6')
		L_GP50[$t]=$(median "$RES/lat.tsv" "$t" 'xv("split_p50_us")')
		L_GP99[$t]=$(median "$RES/lat.tsv" "$t" 'xv("split_p99_us")')
		L_OP50[$t]=$(median "$RES/lat.tsv" "$t" 'xv("rest_p50_us")')
		L_OP99[$t]=$(median "$RES/lat.tsv" "$t" 'xv("rest_p99_us")')
		L_CPU[$t]=$(median "$RES/lat.tsv" "$t" "$CPU100K")
		L_DRAIN[$t]=$(median "$RES/lat.tsv" "$t" 'xv("drain_s")')
		UNDEL[$t]=$(xsum "$RES/lat.tsv" "$t" undelivered)
		TMO[$t]=$(xcount "$RES/lat.tsv" "$t" drain timeout)
	done
	local -A SC_RPS SC_P99 SC_CPU SC_C0 SC_C1 SC_PU
	for t in script-nginx-gzip script-consentgate-gzip script-nginx-identity script-consentgate-identity; do
		SC_RPS[$t]=$(median "$RES/script.tsv" "$t" "$RPS")
		SC_C0[$t]=$(median "$RES/script.tsv" "$t" '$8')
		SC_C1[$t]=$(median "$RES/script.tsv" "$t" '$9')
		SC_PU[$t]=$(median "$RES/script.tsv" "$t" '$7/'"$HZ"'/$4*100')
		SC_P99[$t]=$(median "$RES/script.tsv" "$t" '$6')
		SC_CPU[$t]=$(median "$RES/script.tsv" "$t" "$CPU100K")
	done
	noisy=$(awk -F'\t' -v n="$NOISE_PCT" '$10 > n' "${FILES[@]}" | wc -l)
	errs=$(awk -F'\t' '$11 ~ /(status_errors|socket_errors|errors|non2xx)=[1-9]/' "${FILES[@]}" | wc -l)
	undel_runs=$(awk -F'\t' '$11 ~ /undelivered=([1-9]|-|nan)/' "${FILES[@]}" | wc -l)
	tmo_runs=$(awk -F'\t' '$11 ~ /drain=timeout/' "${FILES[@]}" | wc -l)
	# delivery TARGET DRAIN...: "drain s …; undelivered N" for a queued target.
	delivery() {
		local t=$1 out="" d
		shift
		[[ ${UNDEL[$t]:-nan} == nan ]] && { echo "–"; return; }
		for d in "$@"; do out+="${out:+ / }$(f2 "$d")"; done
		out+=" s; undelivered ${UNDEL[$t]}"
		((${TMO[$t]:-0} > 0)) && out+="; **${TMO[$t]} drain(s) timed out**"
		echo "$out"
	}

	label() {
		case $1 in
		stub-direct) echo "stub direct (no proxy)" ;;
		nginx) echo "nginx proxy_pass" ;;
		consentgate) echo "**consentgate enforcing, GA4 queued**" ;;
		consentgate-sync) echo "consentgate enforcing, GA4 sync (before queued delivery)" ;;
		consentgate-pipelined) echo "consentgate enforcing, GA4 queued, pipelined (4 conns)" ;;
		consentgate-dry-run) echo "consentgate dry run (GA4 queued)" ;;
		consentgate-decision-log) echo "consentgate enforcing + decision log (GA4 queued)" ;;
		nginx-lat) echo "nginx proxy_pass" ;;
		consentgate-lat) echo "**consentgate, GA4 queued**" ;;
		consentgate-lat-sync) echo "consentgate, GA4 sync" ;;
		consentgate-lat-pipelined) echo "consentgate, GA4 queued, pipelined (4 conns)" ;;
		bare-fasthttp-proxy) echo "bare fasthttp proxy (reference)" ;;
		esac
	}
	met() { awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN { if (a == "nan" || b == "nan" || a == "" || b == "") { print "n/a"; exit }
		ok = (op == "<=" ? a <= b : a >= b); print (ok ? "met" : "**missed**") }'; }

	{
		echo "## consentgate load benchmark — $STARTED, consentgate ${REVISION:-unknown}"
		echo
		echo "Machine: $MACHINE."
		echo "Proxy under test on CPU 0 with one worker (GOMAXPROCS=1 / worker_processes 1); load generator and stubs on CPU 1."
		echo "Mix: bench/hits.txt (GA4 granted GET, GA4 denied GET, GA4 batched POST, Ads conversion), $CONNECTIONS connections, medians of $ROUNDS alternated rounds."
		echo "consentgate: tag-gateway style, region from CF-IPCountry, decision log off (except the decision-log row: on, to /dev/null)."
		echo
		echo "### Proxying hits"
		echo
		echo "| target | max req/s (wrk, ${SAT_DURATION}s) | p50 ms | p99 ms | proxy CPU s / 100k req at max | fixed $RATE req/s: achieved | p50 ms | p99 ms | **proxy CPU s / 100k req** | saturated first (max runs) | queued GA4: drain at max / fixed; undelivered |"
		echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
		for t in "${TARGETS[@]}"; do
			echo "| $(label "$t") | $(f1 "${S_RPS[$t]}") | $(ms "${S_P50[$t]}") | $(ms "${S_P99[$t]}") | $(f2 "${S_CPU[$t]}") | $(f1 "${F_RPS[$t]}") | $(ms "${F_P50[$t]}") | $(ms "${F_P99[$t]}") | $(f2 "${F_CPU[$t]}") | $(verdict "${S_C0[$t]}" "${S_C1[$t]}" "${S_PU[$t]}"): CPU 0 $(f1 "${S_C0[$t]}")%, CPU 1 $(f1 "${S_C1[$t]}")% | $(delivery "$t" "${S_DRAIN[$t]}" "${F_DRAIN[$t]}") |"
		done
		for t in consentgate consentgate-pipelined consentgate-sync consentgate-dry-run; do
			[[ -n ${S_RPS[$t]:-} ]] || continue
			echo "| *$t / nginx* | $(ratio "${S_RPS[$t]}" "${S_RPS[nginx]}") | $(ratio "${S_P50[$t]}" "${S_P50[nginx]}") | $(ratio "${S_P99[$t]}" "${S_P99[nginx]}") | $(ratio "${S_CPU[$t]}" "${S_CPU[nginx]}") | | $(ratio "${F_P50[$t]}" "${F_P50[nginx]}") | $(ratio "${F_P99[$t]}" "${F_P99[nginx]}") | $(ratio "${F_CPU[$t]}" "${F_CPU[nginx]}") | | |"
		done
		echo
		echo "Fixed rate: $RATE req/s = ${RATE_FRACTION}% of nginx's median maximum, bench/load (open loop, latency without coordinated omission), ${RATE_DURATION}s per run."
		echo "Queued targets (consentgate with GA4 queued) answer GA4 hits before delivering them: after every run the script waited (at most ${DRAIN_WAIT:-60}s) until the instance's queue, in-flight hits and spool were empty, and counted that drain in the run's seconds (so in its req/s) and in its CPU. \"undelivered\" is accepted_total minus delivered_total over the runs (0 = every queued hit reached the stub)."
		if [[ -f $RES/lat.tsv ]]; then
			echo
			echo "### Upstream with ${LAT_DELAY} latency (browser side)"
			echo
			echo "Stub with \`-delay ${LAT_DELAY}\` (each answer leaves ${LAT_DELAY} after its request was read; concurrent and pipelined requests overlap, as over a network path), nginx (keepalive 1024) and consentgate in front of it, fixed rate $LAT_RATE req/s ($LAT_REASON) over $LAT_CONNECTIONS connections, ${RATE_DURATION}s per run. GA4 hits are 3 of the 4 hits of the mix; the fourth, an Ads conversion, is sync in every mode and waits for the upstream."
			echo
			echo "| target | achieved req/s (drain included) | p50 ms | p99 ms | GA4 hits p50 ms | GA4 hits p99 ms | Ads hits p50 / p99 ms | **proxy CPU s / 100k req** | queued GA4: drain; undelivered |"
			echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
			for t in "${LAT_TARGETS[@]}"; do
				echo "| $(label "$t") | $(f1 "${L_RPS[$t]}") | $(ms "${L_P50[$t]}") | $(ms "${L_P99[$t]}") | $(ms "${L_GP50[$t]}") | $(ms "${L_GP99[$t]}") | $(ms "${L_OP50[$t]}") / $(ms "${L_OP99[$t]}") | $(f2 "${L_CPU[$t]}") | $(delivery "$t" "${L_DRAIN[$t]}") |"
			done
			for t in consentgate-lat consentgate-lat-pipelined consentgate-lat-sync; do
				echo "| *$t / nginx* | $(ratio "${L_RPS[$t]}" "${L_RPS[nginx-lat]}") | $(ratio "${L_P50[$t]}" "${L_P50[nginx-lat]}") | $(ratio "${L_P99[$t]}" "${L_P99[nginx-lat]}") | $(ratio "${L_GP50[$t]}" "${L_GP50[nginx-lat]}") | $(ratio "${L_GP99[$t]}" "${L_GP99[nginx-lat]}") | | $(ratio "${L_CPU[$t]}" "${L_CPU[nginx-lat]}") | |"
			done
		fi
		echo
		echo "### Serving the tag script (~100 KB, ~30 KB gzipped)"
		echo
		echo "| encoding | nginx from disk req/s | consentgate cache req/s | ratio | p99 ms nginx / consentgate | CPU s / 100k nginx / consentgate | saturated first: nginx / consentgate |"
		echo "|---|---:|---:|---:|---:|---:|---|"
		for enc in gzip identity; do
			n=script-nginx-$enc c=script-consentgate-$enc
			echo "| $enc | $(f1 "${SC_RPS[$n]}") | $(f1 "${SC_RPS[$c]}") | $(ratio "${SC_RPS[$c]}" "${SC_RPS[$n]}") | $(ms "${SC_P99[$n]}") / $(ms "${SC_P99[$c]}") | $(f2 "${SC_CPU[$n]}") / $(f2 "${SC_CPU[$c]}") | $(verdict "${SC_C0[$n]}" "${SC_C1[$n]}" "${SC_PU[$n]}") / $(verdict "${SC_C0[$c]}" "${SC_C1[$c]}" "${SC_PU[$c]}") |"
		done
		echo
		echo "### Memory (RSS)"
		echo
		echo "| process | idle | with idle keep-alive connections | per connection | peak during the runs above |"
		echo "|---|---:|---:|---:|---:|"
		echo "| consentgate (fresh instance) | $((CG_RSS0 / 1024)) MiB | $((CG_RSS1 / 1024)) MiB ($CG_RSS_OPEN conns) | $(awk -v a="$CG_RSS0" -v b="$CG_RSS1" -v n="$CG_RSS_OPEN" 'BEGIN { printf "%.1f KiB", (b - a) / (n > 0 ? n : 1) }') | $((CG_HWM / 1024)) MiB (enforcing), $((DRY_HWM / 1024)) MiB (dry run) |"
		echo "| nginx (master + worker) | $((NGINX_RSS0 / 1024)) MiB | $((NGINX_RSS1 / 1024)) MiB ($NGINX_RSS_OPEN conns) | $(awk -v a="$NGINX_RSS0" -v b="$NGINX_RSS1" -v n="$NGINX_RSS_OPEN" 'BEGIN { printf "%.1f KiB", (b - a) / (n > 0 ? n : 1) }') | $((NGINX_HWM / 1024)) MiB |"
		echo
		echo "### Targets (issue: consentgate enforcing vs nginx)"
		echo
		echo "| target | value | result |"
		echo "|---|---|---|"
		local r_cpu r_rps r_p99 r_scr
		r_cpu=$(pratio "$RES/fixed.tsv" "$CPU100K" consentgate nginx)
		r_rps=$(pratio "$RES/sat.tsv" "$RPS" consentgate nginx)
		r_p99=$(pratio "$RES/fixed.tsv" '$6' consentgate nginx)
		r_scr=$(pratio "$RES/script.tsv" "$RPS" script-consentgate-gzip script-nginx-gzip)
		echo "| CPU s / 100k req at $RATE req/s <= nginx (aim 0.8x), GA4 queued, drain included | $(f2 "$r_cpu")x ($(f2 "${F_CPU[consentgate]}") vs $(f2 "${F_CPU[nginx]}") s) | $(met "$r_cpu" "<=" 1) |"
		echo "| max throughput >= 1.0x nginx (aim 1.2x), GA4 queued, drain included | $(f2 "$r_rps")x ($(f1 "${S_RPS[consentgate]}") vs $(f1 "${S_RPS[nginx]}") req/s; saturated first: consentgate $(verdict "${S_C0[consentgate]}" "${S_C1[consentgate]}" "${S_PU[consentgate]}"), nginx $(verdict "${S_C0[nginx]}" "${S_C1[nginx]}" "${S_PU[nginx]}")) | $(met "$r_rps" ">=" 1) |"
		echo "| p99 at $RATE req/s <= nginx | $(f2 "$r_p99")x ($(ms "${F_P99[consentgate]}") vs $(ms "${F_P99[nginx]}") ms) | $(met "$r_p99" "<=" 1) |"
		local q rq_cpu rq_rps
		for q in consentgate-pipelined consentgate-sync; do
			[[ -n ${S_RPS[$q]:-} ]] || continue
			rq_cpu=$(pratio "$RES/fixed.tsv" "$CPU100K" "$q" nginx)
			rq_rps=$(pratio "$RES/sat.tsv" "$RPS" "$q" nginx)
			echo "| $q: CPU s / 100k req at $RATE req/s <= nginx | $(f2 "$rq_cpu")x ($(f2 "${F_CPU[$q]}") vs $(f2 "${F_CPU[nginx]}") s) | $(met "$rq_cpu" "<=" 1) |"
			echo "| $q: max throughput >= 1.0x nginx | $(f2 "$rq_rps")x ($(f1 "${S_RPS[$q]}") vs $(f1 "${S_RPS[nginx]}") req/s) | $(met "$rq_rps" ">=" 1) |"
		done
		for q in consentgate consentgate-pipelined; do
			[[ ${UNDEL[$q]:-nan} != nan ]] || continue
			echo "| $q: every queued hit delivered (undelivered 0, every drain within ${DRAIN_WAIT:-60}s) | undelivered ${UNDEL[$q]}, drain timeouts ${TMO[$q]} | $( ((UNDEL[$q] == 0 && TMO[$q] == 0)) && echo met || echo "**missed**") |"
		done
		if [[ -f $RES/lat.tsv ]]; then
			local lat_us r_lcpu
			lat_us=$(awk -v d="$LAT_DELAY" 'BEGIN { v = d + 0; if (d ~ /ms$/) v *= 1000; else if (d ~ /us$|µs$/) v *= 1; else v *= 1e6; print v }')
			for q in consentgate-lat consentgate-lat-pipelined; do
				echo "| $q: browser-side GA4 p99 below the upstream's ${LAT_DELAY} (the browser does not wait for Google) | $(ms "${L_GP99[$q]}") ms (nginx $(ms "${L_GP99[nginx-lat]}") ms) | $(met "${L_GP99[$q]}" "<=" "$lat_us") |"
				r_lcpu=$(pratio "$RES/lat.tsv" "$CPU100K" "$q" nginx-lat)
				echo "| $q: CPU s / 100k req at $LAT_RATE req/s, ${LAT_DELAY} upstream, <= nginx | $(f2 "$r_lcpu")x ($(f2 "${L_CPU[$q]}") vs $(f2 "${L_CPU[nginx-lat]}") s) | $(met "$r_lcpu" "<=" 1) |"
				echo "| $q: every queued hit delivered, ${LAT_DELAY} upstream | undelivered ${UNDEL[$q]}, drain timeouts ${TMO[$q]} | $( [[ ${UNDEL[$q]} == 0 && ${TMO[$q]} == 0 ]] && echo met || echo "**missed**") |"
			done
		fi
		echo "| script cache >= nginx static (gzip) | $(f2 "$r_scr")x ($(f1 "${SC_RPS[script-consentgate-gzip]}") vs $(f1 "${SC_RPS[script-nginx-gzip]}") req/s) | $(met "$r_scr" ">=" 1) |"
		echo "| RSS <= 200 MB (195,312 KiB) with $CG_RSS_OPEN idle connections | $((CG_RSS1 / 1024)) MiB | $(met "$CG_RSS1" "<=" 195312) |"
		echo
		echo "Ratios in this table are medians of the per-round ratios (each round runs the targets back to back)."
		if ((noisy > 0)); then echo "Note: $noisy run(s) still had more than ${NOISE_PCT}% of a CPU of other work on the machine after $RETRIES attempts (column 10 of the raw .tsv files)."; fi
		if ((errs > 0)); then echo "Note: $errs run(s) saw errors or non-2xx answers (column 11 of the raw .tsv files)."; fi
		if ((undel_runs > 0)); then echo "Note: $undel_runs run(s) of a queued target ended with hits accepted but not delivered (undelivered= in column 11)."; fi
		if ((tmo_runs > 0)); then echo "Note: $tmo_runs run(s) of a queued target did not drain within ${DRAIN_WAIT:-60}s (drain=timeout in column 11); their seconds and CPU stop at the timeout."; fi
		echo "Raw results: bench/results/$(basename "$RES")/."
	} >"$RES/summary.md"
		echo
		cat "$RES/summary.md"
}

if [[ ${1:-} == summary ]]; then
	RES=$(cd "${2:?usage: bench/run.sh summary bench/results/DIR}" && pwd)
	summarize
	exit 0
fi

# ---------------------------------------------------------------- setup

[[ $(uname -s) == Linux ]] || die "Linux only (taskset, /proc)"
(($(nproc --all) >= 2)) || die "needs at least 2 CPUs (proxy on CPU 0, load on CPU 1)"
command -v "$GO" >/dev/null || die "Go is not installed"

need=()
command -v wrk >/dev/null || need+=(wrk)
NGINX=$(command -v nginx || true)
[[ -z $NGINX && -x /usr/sbin/nginx ]] && NGINX=/usr/sbin/nginx
[[ -z $NGINX ]] && need+=(nginx-light)
command -v curl >/dev/null || need+=(curl)
command -v taskset >/dev/null || need+=(util-linux)
if ((${#need[@]})); then
	SUDO=()
	(($(id -u) == 0)) || SUDO=(sudo)
	log "installing ${need[*]} from Debian"
	export DEBIAN_FRONTEND=noninteractive
	"${SUDO[@]}" apt-get update -qq
	"${SUDO[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
	NGINX=$(command -v nginx || echo /usr/sbin/nginx)
fi
[[ -x $NGINX ]] || die "nginx not found"

HZ=$(getconf CLK_TCK)
hard=$(ulimit -Hn)
want=65536
[[ $hard != unlimited ]] && ((hard < want)) && want=$hard
ulimit -n "$want" 2>/dev/null || true
if (($(ulimit -n) < IDLE_CONNS + 512)); then
	IDLE_CONNS=$(($(ulimit -n) - 512))
	log "open-file limit $(ulimit -n): memory test uses $IDLE_CONNS connections"
fi

for p in $STUB_PORT $STUB0_PORT $LSTUB_PORT $CG_PORT $NGINX_PORT $DRY_PORT $LOG_PORT $RSS_PORT $BARE_PORT $SYNC_PORT $PIPE_PORT \
	$LCG_PORT $LSYNC_PORT $LPIPE_PORT $LNGINX_PORT \
	$((CG_PORT + 10)) $((DRY_PORT + 10)) $((LOG_PORT + 10)) $((RSS_PORT + 10)) $((SYNC_PORT + 10)) $((PIPE_PORT + 10)) \
	$((LCG_PORT + 10)) $((LSYNC_PORT + 10)) $((LPIPE_PORT + 10)); do
	port_free "$p" || die "127.0.0.1:$p is in use (set BASE_PORT)"
done

# The script itself and everything it starts without taskset stay on CPU 1.
taskset -cp 1 $$ >/dev/null

# Hard limit of the whole run.
(
	trap 'kill $sp 2>/dev/null; exit 0' TERM
	sleep "$MAX_SECONDS" &
	sp=$!
	wait $sp
	echo "bench: time limit of ${MAX_SECONDS}s reached, stopping" >&2
	kill -TERM $$
) &
WATCHDOG=$!

TMP=$(mktemp -d "${TMPDIR:-/tmp}/consentgate-bench.XXXXXX")
chmod 755 "$TMP" # nginx workers may run as another user
STARTED=$(date -u +%Y-%m-%dT%H:%MZ)
REVISION=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
RES=$ROOT/bench/results/$(date +%Y%m%d-%H%M%S)
mkdir -p "$RES/raw"
ln -sfn "$(basename "$RES")" "$ROOT/bench/results/latest"

log "building into bench/.bin"
mkdir -p "$BIN"
"$GO" build -o "$BIN/consentgate" ./cmd/consentgate
"$GO" build -o "$BIN/stub" ./bench/stub
"$GO" build -o "$BIN/load" ./bench/load
"$GO" build -o "$BIN/conns" ./bench/conns
"$GO" build -o "$BIN/bareproxy" ./bench/bareproxy

# The script body, on disk for nginx (plain and gzip -9, as gzip_static wants).
mkdir -p "$TMP/www"
"$BIN/stub" -dump "$TMP/www/gtag.js"
gzip -9 -n -k "$TMP/www/gtag.js"
chmod 755 "$TMP/www"
chmod 644 "$TMP/www"/*

cat >"$TMP/consentgate.yaml" <<EOF
# Tag-gateway style in front of the stub, as bench/run.sh runs it.
listen: "127.0.0.1:$CG_PORT"
admin_listen: "127.0.0.1:$((CG_PORT + 10))"
upstream: "http://127.0.0.1:$STUB_PORT"
path_prefix: /metrics
tags: ["G-F9XM71K45T", "AW-1071635065"]
cookieless:
  secret: "consentgate-bench-secret-0123456789abcdef0123456789"
trusted_proxies: ["127.0.0.0/8"]
geo:
  headers: ["CF-IPCountry"]
log:
  level: warn
  decisions:
    output: "off"
timeouts:
  drain: 0s
EOF

NGINX_CONNS=$((IDLE_CONNS + 1024 + 2 * LAT_CONNECTIONS))
NGINX_LAT_KEEPALIVE=1024
cat >"$TMP/nginx.conf" <<EOF
# nginx as a plain reverse proxy to the stub, as bench/run.sh runs it.
worker_processes 1;
worker_cpu_affinity 01;
worker_rlimit_nofile $((NGINX_CONNS * 2 + 64));
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log warn;
events { worker_connections $NGINX_CONNS; multi_accept on; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 75s;
  keepalive_requests 1000000;
  client_body_temp_path $TMP/nginx-body;
  proxy_temp_path $TMP/nginx-proxy;
  fastcgi_temp_path $TMP/nginx-fastcgi;
  uwsgi_temp_path $TMP/nginx-uwsgi;
  scgi_temp_path $TMP/nginx-scgi;
  upstream stub {
    server 127.0.0.1:$STUB_PORT;
    keepalive 256;
  }
  # The stub with $LAT_DELAY of latency: every request is in flight that
  # long, so the idle pool must hold as many connections as are busy.
  upstream stublat {
    server 127.0.0.1:$LSTUB_PORT;
    keepalive $NGINX_LAT_KEEPALIVE;
  }
  server {
    listen 127.0.0.1:$LNGINX_PORT backlog=4096;
    location /metrics/ {
      proxy_pass http://stublat;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-CountryRegion \$http_cf_ipcountry;
    }
  }
  server {
    listen 127.0.0.1:$NGINX_PORT backlog=4096;
    # The script, served from disk: the same bytes the stub serves.
    location = /metrics/gtag/js {
      root $TMP/www;
      try_files /gtag.js =404;
      gzip_static on;
      gzip_vary on;
      default_type application/javascript;
      add_header Cache-Control "public, max-age=300";
    }
    location /metrics/ {
      proxy_pass http://stub;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-CountryRegion \$http_cf_ipcountry;
    }
  }
}
EOF
"$NGINX" -t -q -c "$TMP/nginx.conf" -p "$TMP/" 2>"$TMP/nginx-test.log" || {
	cat "$TMP/nginx-test.log" >&2
	die "nginx config test failed"
}

log "starting the stub (CPU 1) and the targets (CPU 0)"
start stub env GOMAXPROCS=1 taskset -c 1 "$BIN/stub" -listen "127.0.0.1:$STUB_PORT"
STUB_PID=$LAST_PID
start stub0 env GOMAXPROCS=1 taskset -c 0 "$BIN/stub" -listen "127.0.0.1:$STUB0_PORT"
STUB0_PID=$LAST_PID
start stublat env GOMAXPROCS=1 taskset -c 1 "$BIN/stub" -listen "127.0.0.1:$LSTUB_PORT" -delay "$LAT_DELAY"
LSTUB_PID=$LAST_PID
# cg NAME PORT [VAR=value...]: a consentgate on CPU 0 with the bench config
# and its own spool directory (one process per spool: it is locked).
cg() {
	local name=$1 port=$2
	shift 2
	mkdir -p "$TMP/spool-$name"
	start "$name" env GOMAXPROCS=1 CONSENTGATE_LISTEN="127.0.0.1:$port" CONSENTGATE_ADMIN_LISTEN="127.0.0.1:$((port + 10))" \
		CONSENTGATE_DELIVERY_SPOOL_DIR="$TMP/spool-$name" "$@" \
		taskset -c 0 "$BIN/consentgate" serve --config "$TMP/consentgate.yaml"
}
LAT_UPSTREAM=CONSENTGATE_UPSTREAM=http://127.0.0.1:$LSTUB_PORT
cg cg "$CG_PORT"
CG_PID=$LAST_PID
cg cgsync "$SYNC_PORT" CONSENTGATE_DELIVERY_GA4=sync
SYNC_PID=$LAST_PID
cg cgpipe "$PIPE_PORT" CONSENTGATE_DELIVERY_PIPELINE_CONNS=4
PIPE_PID=$LAST_PID
cg dry "$DRY_PORT" CONSENTGATE_CONSENT_ENFORCE=false
DRY_PID=$LAST_PID
cg lcg "$LCG_PORT" "$LAT_UPSTREAM"
LCG_PID=$LAST_PID
cg lsync "$LSYNC_PORT" "$LAT_UPSTREAM" CONSENTGATE_DELIVERY_GA4=sync
LSYNC_PID=$LAST_PID
cg lpipe "$LPIPE_PORT" "$LAT_UPSTREAM" CONSENTGATE_DELIVERY_PIPELINE_CONNS=4
LPIPE_PID=$LAST_PID
if ((LOG_RUNS)); then
	cg cglog "$LOG_PORT" CONSENTGATE_LOG_DECISIONS_OUTPUT=/dev/null
	LOG_PID=$LAST_PID
fi
if ((REFERENCE)); then
	start bare env GOMAXPROCS=1 taskset -c 0 "$BIN/bareproxy" -listen "127.0.0.1:$BARE_PORT" -upstream "127.0.0.1:$STUB_PORT"
	BARE_PID=$LAST_PID
fi
start nginx taskset -c 0 "$NGINX" -c "$TMP/nginx.conf" -p "$TMP/" -g "daemon off;"
NGINX_PID=$LAST_PID

wait_http "http://127.0.0.1:$STUB_PORT/" "$STUB_PID" || die "stub did not start ($TMP/stub.log)"
wait_http "http://127.0.0.1:$STUB0_PORT/" "$STUB0_PID" || die "stub0 did not start"
wait_http "http://127.0.0.1:$LSTUB_PORT/" "$LSTUB_PID" || die "stub with latency did not start"
for x in "cg $CG_PORT $CG_PID" "cgsync $SYNC_PORT $SYNC_PID" "cgpipe $PIPE_PORT $PIPE_PID" "dry $DRY_PORT $DRY_PID" \
	"lcg $LCG_PORT $LCG_PID" "lsync $LSYNC_PORT $LSYNC_PID" "lpipe $LPIPE_PORT $LPIPE_PID"; do
	set -- $x
	wait_http "http://127.0.0.1:$2/healthz" "$3" || { cat "$TMP/$1.log" >&2; die "consentgate ($1) did not start"; }
done
if ((LOG_RUNS)); then wait_http "http://127.0.0.1:$LOG_PORT/healthz" "$LOG_PID" || die "consentgate (log) did not start"; fi
if ((REFERENCE)); then wait_http "http://127.0.0.1:$BARE_PORT/metrics/" "$BARE_PID" || die "bareproxy did not start"; fi
wait_http "http://127.0.0.1:$NGINX_PORT/metrics/" "$NGINX_PID" || { cat "$TMP/nginx-error.log" >&2; die "nginx did not start"; }
wait_http "http://127.0.0.1:$LNGINX_PORT/metrics/" "$NGINX_PID" || { cat "$TMP/nginx-error.log" >&2; die "nginx (latency server) did not start"; }
CHILD_OF=$NGINX_PID
NGINX_WORKERS=$(children_of | tr '\n' ' ')
[[ -n $NGINX_WORKERS ]] || die "no nginx worker"
for w in $NGINX_WORKERS; do PIDS+=("$w"); done # also stopped if the master is killed

# Sanity: every target answers every hit of the mix with 2xx, and the
# script is the same bytes everywhere.
check_mix() {
	local port=$1 name=$2 out
	out=$(bounded 30 taskset -c 1 "$BIN/load" -url "http://127.0.0.1:$port" -hits bench/hits.txt -rate 200 -duration 1s -conns 16) ||
		die "$name: load check failed"
	[[ $out == *'"errors":0,"non_2xx":0'* ]] || die "$name: not every hit answered 2xx: $out"
}
check_mix "$STUB0_PORT" stub-direct
check_mix "$NGINX_PORT" nginx
check_mix "$CG_PORT" consentgate
check_mix "$SYNC_PORT" consentgate-sync
check_mix "$PIPE_PORT" consentgate-pipelined
check_mix "$DRY_PORT" consentgate-dry-run
check_mix "$LNGINX_PORT" nginx-lat
check_mix "$LCG_PORT" consentgate-lat
check_mix "$LSYNC_PORT" consentgate-lat-sync
check_mix "$LPIPE_PORT" consentgate-lat-pipelined
((LOG_RUNS)) && check_mix "$LOG_PORT" consentgate-log
((REFERENCE)) && check_mix "$BARE_PORT" bareproxy
want_sum=$(sha256sum <"$TMP/www/gtag.js" | cut -d' ' -f1)
for url in "http://127.0.0.1:$CG_PORT/metrics/gtag/js?id=G-F9XM71K45T" "http://127.0.0.1:$NGINX_PORT/metrics/gtag/js?id=G-F9XM71K45T"; do
	got=$(curl -sf --compressed -H 'CF-IPCountry: DE' "$url" | sha256sum | cut -d' ' -f1) || die "script fetch failed: $url"
	[[ $got == "$want_sum" ]] || die "script bytes differ: $url"
done

# ---------------------------------------------------------------- delivery

# qstate ADMIN_PORT prints "pending accepted delivered dropped" from a
# consentgate's admin /metrics: pending is queue depth + in flight + spool
# records over every upstream, the counters are summed over families and
# causes. Prints "nan nan nan nan" when the metrics cannot be read.
qstate() {
	curl -s --max-time 2 "http://127.0.0.1:$1/metrics" 2>/dev/null | awk '
		/^consentgate_delivery_(queue_depth|inflight|spool_records)\{/ { p += $NF; n++ }
		/^consentgate_delivery_accepted_total\{/ { a += $NF }
		/^consentgate_delivery_delivered_total\{/ { d += $NF }
		/^consentgate_delivery_dropped_total\{/ { x += $NF }
		END { if (n == 0) print "nan nan nan nan"; else printf "%.0f %.0f %.0f %.0f\n", p, a, d, x }'
}

# drain ADMIN_PORT waits until the consentgate behind ADMIN_PORT has
# nothing queued, in flight or spooled (at most DRAIN_WAIT seconds). Sets
# DRAINED (1 or 0) and QSTATE (its last qstate).
drain() {
	local deadline=$((SECONDS + DRAIN_WAIT)) st
	DRAINED=0
	while :; do
		QSTATE=$(qstate "$1")
		st=($QSTATE)
		if [[ ${st[0]} == 0 ]]; then
			DRAINED=1
			return 0
		fi
		((SECONDS >= deadline)) && return 0
		sleep 0.05
	done
}

# Sanity: queued delivery is on where it should be (hits accepted into the
# queue) and off for the sync targets, and every check hit got delivered.
for x in "consentgate $((CG_PORT + 10)) queue" "consentgate-sync $((SYNC_PORT + 10)) sync" \
	"consentgate-pipelined $((PIPE_PORT + 10)) queue" "consentgate-lat $((LCG_PORT + 10)) queue" \
	"consentgate-lat-sync $((LSYNC_PORT + 10)) sync" "consentgate-lat-pipelined $((LPIPE_PORT + 10)) queue"; do
	set -- $x
	drain "$2"
	((DRAINED)) || die "$1: queued hits not delivered within ${DRAIN_WAIT}s after the check (pending accepted delivered dropped: $QSTATE)"
	st=($QSTATE)
	case $3 in
	queue) ((st[1] > 0 && st[1] == st[2])) || die "$1: want GA4 hits queued and all delivered, got accepted=${st[1]} delivered=${st[2]}" ;;
	sync) ((st[1] == 0)) || die "$1: want no queued hits (delivery.ga4: sync), got accepted=${st[1]}" ;;
	esac
done

# ---------------------------------------------------------------- measurement

# target table: name port pids [admin port of a consentgate: its delivery
# is drained and accounted after every run]
declare -A PORT PIDSOF ADMIN
TARGETS=(stub-direct nginx consentgate consentgate-sync consentgate-pipelined consentgate-dry-run)
if ((REFERENCE)); then
	TARGETS+=(bare-fasthttp-proxy)
	PORT[bare-fasthttp-proxy]=$BARE_PORT PIDSOF[bare-fasthttp-proxy]=$BARE_PID
fi
PORT[stub-direct]=$STUB0_PORT PIDSOF[stub-direct]=$STUB0_PID
PORT[nginx]=$NGINX_PORT PIDSOF[nginx]="$NGINX_PID $NGINX_WORKERS"
PORT[consentgate]=$CG_PORT PIDSOF[consentgate]=$CG_PID ADMIN[consentgate]=$((CG_PORT + 10))
PORT[consentgate-sync]=$SYNC_PORT PIDSOF[consentgate-sync]=$SYNC_PID ADMIN[consentgate-sync]=$((SYNC_PORT + 10))
PORT[consentgate-pipelined]=$PIPE_PORT PIDSOF[consentgate-pipelined]=$PIPE_PID ADMIN[consentgate-pipelined]=$((PIPE_PORT + 10))
PORT[consentgate-dry-run]=$DRY_PORT PIDSOF[consentgate-dry-run]=$DRY_PID ADMIN[consentgate-dry-run]=$((DRY_PORT + 10))
if ((LOG_RUNS)); then
	TARGETS+=(consentgate-decision-log)
	PORT[consentgate-decision-log]=$LOG_PORT PIDSOF[consentgate-decision-log]=$LOG_PID ADMIN[consentgate-decision-log]=$((LOG_PORT + 10))
fi
# The latency section: the same, in front of the stub with LAT_DELAY.
LAT_TARGETS=(nginx-lat consentgate-lat consentgate-lat-sync consentgate-lat-pipelined)
PORT[nginx-lat]=$LNGINX_PORT PIDSOF[nginx-lat]="$NGINX_PID $NGINX_WORKERS"
PORT[consentgate-lat]=$LCG_PORT PIDSOF[consentgate-lat]=$LCG_PID ADMIN[consentgate-lat]=$((LCG_PORT + 10))
PORT[consentgate-lat-sync]=$LSYNC_PORT PIDSOF[consentgate-lat-sync]=$LSYNC_PID ADMIN[consentgate-lat-sync]=$((LSYNC_PORT + 10))
PORT[consentgate-lat-pipelined]=$LPIPE_PORT PIDSOF[consentgate-lat-pipelined]=$LPIPE_PID ADMIN[consentgate-lat-pipelined]=$((LPIPE_PORT + 10))

# measure KIND TARGET ROUND CMD...: runs CMD (a load generator on CPU 1)
# and appends one line to $RES/KIND.tsv:
#   target round requests seconds p50_us p99_us proxy_ticks cpu0% cpu1% other% extra
# where other% is the CPU time of both CPUs not used by the proxy, the
# stubs or the load generator (other work on the machine), in % of one CPU.
# A run with other% above NOISE_PCT is repeated (up to RETRIES attempts).
# For a consentgate (ADMIN set) the run ends when its delivery has drained
# (see drain): seconds, ticks and CPU counters are read after the drain,
# and extra gets queued=, delivered=, undelivered=, dropped=, drain_s=
# (and drain=timeout when DRAIN_WAIT ran out).
measure() {
	local attempt
	for attempt in $(seq 1 "$RETRIES"); do
		measure_once "$@"
		((OTHER <= NOISE_PCT)) && break
		((attempt < RETRIES)) && log "  other work on the machine during that run (${OTHER}% of a CPU): repeating it"
	done
	printf '%s\n' "$LINE" >>"$RES/$1.tsv"
}
measure_once() {
	local kind=$1 target=$2 round=$3
	shift 3
	local raw="$RES/raw/$kind-$target-r$round.txt"
	local admin=${ADMIN[$target]:-} q0=() q1=()
	if [[ -n $admin ]]; then
		drain "$admin" # what an earlier run left is not this run's
		((DRAINED)) || log "  $target: still delivering from before this run ($QSTATE)"
	fi
	wait_quiet
	local p0 s0 c0 l0 p1 s1 c1 l1
	[[ -n $admin ]] && q0=($(qstate "$admin"))
	p0=$(ticks ${PIDSOF[$target]})
	s0=$(ticks "$STUB_PID" "$LSTUB_PID")
	c0=($(cpustat))
	child_ticks
	l0=$CHILD_TICKS
	local t0=$EPOCHREALTIME
	bounded $((SAT_DURATION + RATE_DURATION + 60)) "$@" >"$raw" 2>&1 || die "$kind $target: load run failed ($raw)"
	local tl=$EPOCHREALTIME drain_s=0 qextra=""
	if [[ -n $admin ]]; then
		drain "$admin"
		q1=($QSTATE)
		drain_s=$(awk -v a="$tl" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
		qextra=$(awk -v a0="${q0[1]}" -v a1="${q1[1]}" -v d0="${q0[2]}" -v d1="${q1[2]}" -v x0="${q0[3]}" -v x1="${q1[3]}" \
			-v ds="$drain_s" -v ok="$DRAINED" 'BEGIN {
			if (a0 == "nan" || a1 == "nan") { printf ",queued=nan,undelivered=nan,drain_s=%s", ds; exit }
			printf ",queued=%d,delivered=%d,undelivered=%d,dropped=%d,drain_s=%s%s", a1-a0, d1-d0, (a1-a0)-(d1-d0), x1-x0, ds, (ok ? "" : ",drain=timeout") }')
	fi
	local t1=$EPOCHREALTIME
	p1=$(ticks ${PIDSOF[$target]})
	s1=$(ticks "$STUB_PID" "$LSTUB_PID")
	c1=($(cpustat))
	child_ticks
	l1=$CHILD_TICKS
	local requests secs p50 p99 extra=""
	if [[ $kind == fixed || $kind == lat ]]; then
		local json
		json=$(grep '^{' "$raw" | tail -1)
		requests=$(jget "$json" requests)
		secs=$(awk -v r="$requests" -v a="$(jget "$json" achieved_rate)" -v ds="$drain_s" 'BEGIN { printf "%.3f", (a > 0 ? r / a : 1) + ds }')
		p50=$(jget "$json" p50_us)
		p99=$(jget "$json" p99_us)
		extra="achieved=$(jget "$json" achieved_rate),errors=$(jget "$json" errors),non2xx=$(jget "$json" non_2xx),late=$(jget "$json" late)"
		extra+=",split_p50_us=$(jget "$json" split_p50_us),split_p99_us=$(jget "$json" split_p99_us),rest_p50_us=$(jget "$json" rest_p50_us),rest_p99_us=$(jget "$json" rest_p99_us)"
	else
		local line
		line=$(grep '^RESULT' "$raw" | tail -1) || die "$kind $target: no RESULT line in $raw"
		requests=$(kv "$line" requests)
		secs=$(awk -v d="$(kv "$line" duration_us)" -v ds="$drain_s" 'BEGIN { printf "%.3f", d / 1e6 + ds }')
		p50=$(kv "$line" p50_us)
		p99=$(kv "$line" p99_us)
		extra="status_errors=$(kv "$line" status_errors),socket_errors=$(kv "$line" socket_errors)"
	fi
	extra+=$qextra
	local dp=$((p1 - p0)) ds=$((s1 - s0)) dl=$((l1 - l0))
	local b0=$((c1[0] - c0[0])) n0=$((c1[1] - c0[1])) b1=$((c1[2] - c0[2])) n1=$((c1[3] - c0[3]))
	local other=$(((b0 + b1 - dp - ds - dl) * 100 / (n0 > 0 ? n0 : 1)))
	((other < 0)) && other=0
	OTHER=$other
	LINE=$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "$target" "$round" "$requests" "$secs" "$p50" "$p99" "$dp" \
		$((b0 * 100 / (n0 > 0 ? n0 : 1))) $((b1 * 100 / (n1 > 0 ? n1 : 1))) "$other" "$extra")
	log "$(printf '%-8s %-26s r%s %8.0f req/s  p50 %6.2f ms  p99 %7.2f ms  proxy %5.1f%% CPU  cpu0 %3d%% cpu1 %3d%% other %2d%%%s' \
		"$kind" "$target" "$round" "$(awk -v r="$requests" -v s="$secs" 'BEGIN{print r/s}')" \
		"$(awk -v x="$p50" 'BEGIN{print x/1000}')" "$(awk -v x="$p99" 'BEGIN{print x/1000}')" \
		"$(awk -v t="$dp" -v hz="$HZ" -v s="$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" 'BEGIN{print 100*t/hz/s}')" \
		$((b0 * 100 / (n0 > 0 ? n0 : 1))) $((b1 * 100 / (n1 > 0 ? n1 : 1))) "$other" "${qextra:+  ${qextra#,}}")"
}

# kv LINE KEY: value of KEY=value in a RESULT line.
kv() { sed -n "s/.*[ ]$2=\([^ ]*\).*/\1/p" <<<" $1"; }
# jget JSON KEY: a number from the load generator's JSON.
jget() { sed -n "s/.*\"$2\":\([-0-9.e+]*\).*/\1/p" <<<"$1"; }

# wrk_cmd PORT DURATION HITS and load_cmd PORT RATE DURATION [CONNS] set
# CMD to a load-generator command line on CPU 1. bench/load reports the
# GA4 collect hits (queued by consentgate) apart from the others as well.
wrk_cmd() {
	CMD=(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$2s" --latency --timeout 5s -s bench/mix.lua "http://127.0.0.1:$1" -- "$3")
}
load_cmd() {
	CMD=(env GOMAXPROCS=1 taskset -c 1 "$BIN/load" -url "http://127.0.0.1:$1" -hits bench/hits.txt -rate "$2" -duration "$3s"
		-conns "${4:-$CONNECTIONS}" -split /metrics/g/collect)
}

log "warm-up: ${WARMUP}s per target"
for t in "${TARGETS[@]}"; do
	wrk_cmd "${PORT[$t]}" "$WARMUP" bench/hits.txt
	bounded $((WARMUP + 30)) "${CMD[@]}" >/dev/null 2>&1 || die "warm-up of $t failed"
done

log "saturation: wrk -t1 -c$CONNECTIONS -d${SAT_DURATION}s, $ROUNDS rounds"
for r in $(seq 1 "$ROUNDS"); do
	for t in "${TARGETS[@]}"; do
		wrk_cmd "${PORT[$t]}" "$SAT_DURATION" bench/hits.txt
		measure sat "$t" "$r" "${CMD[@]}"
	done
done


nginx_max=$(median "$RES/sat.tsv" nginx '$3/$4')
if [[ $RATE == auto ]]; then
	RATE=$(awk -v m="$nginx_max" -v f="$RATE_FRACTION" 'BEGIN { r = int(m * f / 100 / 100) * 100; print (r < 100 ? 100 : r) }')
fi
log "fixed rate: $RATE req/s (${RATE_FRACTION}% of nginx's median max $(printf '%.0f' "$nginx_max")), ${RATE_DURATION}s, $ROUNDS rounds"
for r in $(seq 1 "$ROUNDS"); do
	for t in "${TARGETS[@]}"; do
		load_cmd "${PORT[$t]}" "$RATE" "$RATE_DURATION"
		measure fixed "$t" "$r" "${CMD[@]}"
	done
done

# Upstream with latency: the same fixed rate unless nginx cannot carry it.
# With LAT_DELAY per proxied answer nginx has at most min(LAT_CONNECTIONS,
# its keepalive pool) requests in flight (bench/load sends one request at a
# time per connection, as browsers do), so it carries at most that many
# connections / LAT_DELAY req/s; the rate is held to RATE_FRACTION % of it.
lat_s=$(awk -v d="$LAT_DELAY" 'BEGIN { v = d + 0; if (d ~ /ms$/) v /= 1000; else if (d ~ /us$|µs$/) v /= 1e6; print v }')
lat_conns=$((LAT_CONNECTIONS < NGINX_LAT_KEEPALIVE ? LAT_CONNECTIONS : NGINX_LAT_KEEPALIVE))
lat_cap=$(awk -v c="$lat_conns" -v s="$lat_s" -v f="$RATE_FRACTION" 'BEGIN { r = (s > 0 ? c / s * f / 100 : 1e9); r = int(r / 100) * 100; print (r < 100 ? 100 : r) }')
if [[ $LAT_RATE == auto ]]; then
	if ((RATE <= lat_cap)); then
		LAT_RATE=$RATE
		LAT_REASON="the fixed rate of the runs above"
	else
		LAT_RATE=$lat_cap
		LAT_REASON="lower than the fixed rate above ($RATE req/s): with $LAT_DELAY per answer nginx's $lat_conns connections in flight carry at most $(awk -v c="$lat_conns" -v s="$lat_s" 'BEGIN { printf "%.0f", c / s }') req/s; held to ${RATE_FRACTION}% of that"
	fi
else
	LAT_REASON="set by LAT_RATE"
fi
log "upstream with $LAT_DELAY latency: $LAT_RATE req/s over $LAT_CONNECTIONS connections ($LAT_REASON), ${RATE_DURATION}s, $ROUNDS rounds"
for t in "${LAT_TARGETS[@]}"; do
	load_cmd "${PORT[$t]}" "$LAT_RATE" "$WARMUP" "$LAT_CONNECTIONS"
	bounded $((WARMUP + 30)) "${CMD[@]}" >/dev/null 2>&1 || die "warm-up of $t failed"
done
for r in $(seq 1 "$ROUNDS"); do
	for t in "${LAT_TARGETS[@]}"; do
		load_cmd "${PORT[$t]}" "$LAT_RATE" "$RATE_DURATION" "$LAT_CONNECTIONS"
		measure lat "$t" "$r" "${CMD[@]}"
	done
done
# Not needed any more: their idle workers stay out of the runs below.
for pid in $LCG_PID $LSYNC_PID $LPIPE_PID; do kill -TERM "$pid" 2>/dev/null || true; done

log "scripts: consentgate's cache vs nginx from disk, ${SCRIPT_DURATION}s, $ROUNDS rounds"
grep -v '^Accept-Encoding' bench/script-hits.txt >"$TMP/script-hits-identity.txt"
PORT[script-nginx-gzip]=$NGINX_PORT PIDSOF[script-nginx-gzip]="$NGINX_PID $NGINX_WORKERS"
PORT[script-consentgate-gzip]=$CG_PORT PIDSOF[script-consentgate-gzip]=$CG_PID
PORT[script-nginx-identity]=$NGINX_PORT PIDSOF[script-nginx-identity]="$NGINX_PID $NGINX_WORKERS"
PORT[script-consentgate-identity]=$CG_PORT PIDSOF[script-consentgate-identity]=$CG_PID
for r in $(seq 1 "$ROUNDS"); do
	for enc in gzip identity; do
		hits=bench/script-hits.txt
		[[ $enc == identity ]] && hits=$TMP/script-hits-identity.txt
		for t in nginx consentgate; do
			wrk_cmd "${PORT[script-$t-$enc]}" "$SCRIPT_DURATION" "$hits"
			measure script "script-$t-$enc" "$r" "${CMD[@]}"
		done
	done
done
curl -s "http://127.0.0.1:$((CG_PORT + 10))/metrics" | grep '^consentgate_script_cache_total' >"$RES/raw/script-cache-metrics.txt" || true

# Peak RSS of the consentgate instances after all that load.
rss() { awk '$1=="VmRSS:" {print $2}' "/proc/$1/status"; }
hwm() { awk '$1=="VmHWM:" {print $2}' "/proc/$1/status"; }
CG_HWM=$(hwm "$CG_PID")
DRY_HWM=$(hwm "$DRY_PID")
NGINX_HWM=0
for w in $NGINX_PID $NGINX_WORKERS; do NGINX_HWM=$((NGINX_HWM + $(hwm "$w"))); done

if ((PROFILE)); then
	log "profiles: consentgate at $RATE req/s (CPU ${RATE_DURATION}s, then allocs)"
	mkdir -p "$RES/profiles"
	curl -s -o "$RES/profiles/allocs-before.pb.gz" "http://127.0.0.1:$((CG_PORT + 10))/debug/pprof/allocs" || true
	curl -s --max-time $((RATE_DURATION + 30)) -o "$RES/profiles/cpu.pb.gz" \
		"http://127.0.0.1:$((CG_PORT + 10))/debug/pprof/profile?seconds=$RATE_DURATION" &
	prof_pid=$!
	PIDS+=("$prof_pid")
	sleep 0.2
	load_cmd "$CG_PORT" "$RATE" "$((RATE_DURATION + 1))"
	bounded $((RATE_DURATION + 60)) "${CMD[@]}" >"$RES/raw/profile-load.json" 2>&1 || true
	wait "$prof_pid" || true
	curl -s -o "$RES/profiles/allocs.pb.gz" "http://127.0.0.1:$((CG_PORT + 10))/debug/pprof/allocs" || true
	"$GO" tool pprof -top -nodecount=30 "$BIN/consentgate" "$RES/profiles/cpu.pb.gz" >"$RES/profiles/cpu-top.txt" 2>/dev/null || true
	"$GO" tool pprof -top -nodecount=30 -cum "$BIN/consentgate" "$RES/profiles/cpu.pb.gz" >"$RES/profiles/cpu-top-cum.txt" 2>/dev/null || true
	"$GO" tool pprof -top -nodecount=30 -sample_index=alloc_space -diff_base "$RES/profiles/allocs-before.pb.gz" \
		"$BIN/consentgate" "$RES/profiles/allocs.pb.gz" >"$RES/profiles/allocs-top.txt" 2>/dev/null || true
	"$GO" tool pprof -top -nodecount=30 -sample_index=alloc_objects -diff_base "$RES/profiles/allocs-before.pb.gz" \
		"$BIN/consentgate" "$RES/profiles/allocs.pb.gz" >"$RES/profiles/allocs-objects-top.txt" 2>/dev/null || true
fi

log "memory: $IDLE_CONNS idle keep-alive connections"
# Stop the instances not needed any more, so the memory test has the
# machine to itself.
for pid in $DRY_PID ${LOG_PID:-} $SYNC_PID $PIPE_PID; do kill -TERM "$pid" 2>/dev/null || true; done
cg cgrss "$RSS_PORT"
RSS_PID=$LAST_PID
wait_http "http://127.0.0.1:$RSS_PORT/healthz" "$RSS_PID" || die "consentgate (memory test) did not start"
load_cmd "$RSS_PORT" 1000 1
bounded 30 "${CMD[@]}" >/dev/null 2>&1 || die "memory test warm-up failed"
sleep 1
CG_RSS0=$(rss "$RSS_PID")
NGINX_RSS0=0
for w in $NGINX_PID $NGINX_WORKERS; do NGINX_RSS0=$((NGINX_RSS0 + $(rss "$w"))); done
IDLE_PATH='/metrics/g/collect?v=2&tid=G-F9XM71K45T&gcs=G111&gcd=13r3r3r2r5l1&cid=1174285007.1749196701&en=page_view'
# hold_conns NAME PORT: opens IDLE_CONNS idle connections in the background
# and waits until they are all answered.
hold_conns() {
	start "conns-$1" taskset -c 1 "$BIN/conns" -addr "127.0.0.1:$2" -n "$IDLE_CONNS" -hold 120s -path "$IDLE_PATH" -H 'CF-IPCountry: DE'
	HOLD_PID=$LAST_PID
	local i
	for i in $(seq 1 600); do
		grep -q '^ready' "$TMP/conns-$1.log" 2>/dev/null && break
		kill -0 "$HOLD_PID" 2>/dev/null || die "conns ($1) failed: $(cat "$TMP/conns-$1.log")"
		sleep 0.1
	done
	grep -q '^ready' "$TMP/conns-$1.log" || die "conns ($1) not ready in 60 s"
	sleep 3 # let the server settle (GC, idle buffers)
}
hold_conns consentgate "$RSS_PORT"
CG_RSS_OPEN=$(awk '/^ready/ {print $2}' "$TMP/conns-consentgate.log")
CG_RSS1=$(rss "$RSS_PID")
CG_FDS=$(find "/proc/$RSS_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
if ((PROFILE)); then
	curl -s -o "$RES/profiles/heap-idle-conns.pb.gz" "http://127.0.0.1:$((RSS_PORT + 10))/debug/pprof/heap?gc=1" || true
	"$GO" tool pprof -top -nodecount=20 -sample_index=inuse_space "$BIN/consentgate" "$RES/profiles/heap-idle-conns.pb.gz" \
		>"$RES/profiles/heap-idle-conns-top.txt" 2>/dev/null || true
	curl -s "http://127.0.0.1:$((RSS_PORT + 10))/metrics" | grep -E '^go_memstats_(heap_inuse|heap_sys|stack_sys|sys)_bytes|^go_goroutines' \
		>"$RES/profiles/memstats-idle-conns.txt" 2>/dev/null || true
fi
kill -TERM "$HOLD_PID" 2>/dev/null || true
wait "$HOLD_PID" 2>/dev/null || true
hold_conns nginx "$NGINX_PORT"
NGINX_RSS_OPEN=$(awk '/^ready/ {print $2}' "$TMP/conns-nginx.log")
NGINX_RSS1=0
for w in $NGINX_PID $NGINX_WORKERS; do NGINX_RSS1=$((NGINX_RSS1 + $(rss "$w"))); done
kill -TERM "$HOLD_PID" 2>/dev/null || true
wait "$HOLD_PID" 2>/dev/null || true
printf 'consentgate\t%s\t%s\t%s\t%s\t%s\nnginx\t%s\t%s\t%s\t%s\n' "$CG_RSS0" "$CG_RSS1" "$CG_RSS_OPEN" "$CG_HWM" "$CG_FDS" \
	"$NGINX_RSS0" "$NGINX_RSS1" "$NGINX_RSS_OPEN" "$NGINX_HWM" >"$RES/rss.tsv"

MACHINE="$(nproc --all) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), Linux $(uname -r); $("$GO" version | awk '{print $3}'); $("$NGINX" -v 2>&1 | sed 's/.*version: //'); $(wrk -v 2>&1 | awk 'NR==1 {print $1, $2}' || true)"
declare -p STARTED REVISION MACHINE HZ RATE RATE_FRACTION ROUNDS SAT_DURATION RATE_DURATION SCRIPT_DURATION CONNECTIONS NOISE_PCT RETRIES \
	DRAIN_WAIT LAT_DELAY LAT_RATE LAT_REASON LAT_CONNECTIONS \
	CG_RSS0 CG_RSS1 CG_RSS_OPEN CG_HWM DRY_HWM NGINX_RSS0 NGINX_RSS1 NGINX_RSS_OPEN NGINX_HWM >"$RES/params.env"
summarize
