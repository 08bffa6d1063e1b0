#!/usr/bin/env bash
# nginx recipe test (make test-deploy): the files of deploy/edge/nginx,
# run in a real nginx (Debian's, with the GeoIP2 module) in front of the
# real gateway binary in front of a fake upstream. Only ports, paths and
# the trusted CDN ranges are rewritten for the test; everything else is
# the recipe as shipped.
#
# Phase 1: geo-geoip2.conf (a generated test database maps 127.0.0.1 to
#   DE and 127.0.0.2 to US), both deployment styles.
# Phase 2: geo-cdn-header.conf with 127.0.0.1 as the CDN.
# Each phase: nginx -t, then hits with curl; assertions are on what the
# fake upstream received and on the gateway's decision log.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

GO=${GO:-go}
NGX=${NGX:-18280}
GW_TAG=${GW_TAG:-18281}
GW_SUB=${GW_SUB:-18282}
UP=${UP:-18283}
ADM_TAG=${ADM_TAG:-18291}
ADM_SUB=${ADM_SUB:-18292}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
MODULE=${GEOIP2_MODULE:-/usr/lib/nginx/modules/ngx_http_geoip2_module.so}
[ -x "$NGINX" ] || { echo "nginx not installed (apt-get install nginx-light libnginx-mod-http-geoip2)" >&2; exit 1; }
[ -f "$MODULE" ] || { echo "$MODULE missing (apt-get install libnginx-mod-http-geoip2)" >&2; exit 1; }

t=$(mktemp -d)
chmod 755 "$t"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$t"
}
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
fail() {
	echo "FAIL: $*" >&2
	for f in "$t"/nginx/logs/error.log "$t"/gw-*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done
	exit 1
}

echo "--- build"
$GO build -o "$t/consentgate" ./cmd/consentgate
(cd deploy/test && $GO build -o "$t/fakeupstream" ./fakeupstream && $GO build -o "$t/mkmmdb" ./mkmmdb)
"$t/mkmmdb" -o "$t/test.mmdb" 127.0.0.1/32=DE 127.0.0.2/32=US

"$t/fakeupstream" -listen "127.0.0.1:$UP" >"$t/received.jsonl" &
pids+=($!)

# Two gateways from the recipe's config: tag gateway style (/metrics) and
# subdomain style (no prefix; its upstream is the fake too, as Google's
# hosts are out of reach here).
start_gateway() {
	local name=$1 port=$2 adm=$3 style=$4
	if [ "$style" = subdomain ]; then
		# Subdomain style: the recipe's config without path_prefix.
		sed '/^path_prefix:/d' deploy/edge/nginx/consentgate.yaml >"$t/config-$name.yaml"
	else
		cp deploy/edge/nginx/consentgate.yaml "$t/config-$name.yaml"
	fi
	env -u CONSENTGATE_CONFIG \
		CONSENTGATE_LISTEN="127.0.0.1:$port" CONSENTGATE_ADMIN_LISTEN="127.0.0.1:$adm" \
		CONSENTGATE_UPSTREAM="http://127.0.0.1:$UP" CONSENTGATE_TAGS=G-EDGE1 \
		CONSENTGATE_COOKIELESS_SECRET=nginx-test-secret-0123456789 CONSENTGATE_TIMEOUTS_DRAIN=0s \
		CONSENTGATE_DELIVERY_SPOOL_DIR="$t/spool-$name" \
		CONSENTGATE_CORS_ALLOWED_ORIGINS=https://shop.example \
		CONSENTGATE_LOG_DECISIONS_OUTPUT="$t/decisions-$name.jsonl" CONSENTGATE_LOG_FORMAT=json \
		"$t/consentgate" serve --config "$t/config-$name.yaml" 2>"$t/gw-$name.log" &
	pids+=($!)
	for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return; sleep 0.1; done
	fail "gateway $name did not start"
}
start_gateway tag "$GW_TAG" "$ADM_TAG" tag-gateway
start_gateway sub "$GW_SUB" "$ADM_SUB" subdomain

# configure GEOFILE: an nginx prefix with the recipe files, test-rewritten.
configure() {
	local geo=$1 n="$t/nginx"
	rm -rf "$n" && mkdir -p "$n/conf.d" "$n/snippets" "$n/logs" "$n/tmp" "$n/www"
	echo site >"$n/www/index.html"
	cp deploy/edge/nginx/consentgate-proxy.conf "$n/snippets/"
	sed -e "s#/var/lib/GeoIP/GeoLite2-Country.mmdb#$t/test.mmdb#" \
		-e 's#^\(    default 0;\)$#\1\n    127.0.0.1/32 1;#' \
		-e 's#^\(set_real_ip_from 173.245.48.0/20;\)$#set_real_ip_from 127.0.0.1/32;\n\1#' \
		"deploy/edge/nginx/$geo" >"$n/conf.d/00-geo.conf"
	for f in tag-gateway subdomain; do
		sed -e "s#listen 80;#listen 127.0.0.1:$NGX;#" \
			-e "s#/etc/nginx/snippets/#$n/snippets/#" \
			-e "s#root /var/www/shop;#root $n/www;#" \
			"deploy/edge/nginx/$f.conf" >"$n/conf.d/$f.conf"
	done
	sed -i "s#server 127.0.0.1:8080;#server 127.0.0.1:$GW_TAG;#" "$n/conf.d/tag-gateway.conf"
	sed -i "s#server 127.0.0.1:8080;#server 127.0.0.1:$GW_SUB;#" "$n/conf.d/subdomain.conf"
	cat >"$n/nginx.conf" <<-EOF
		load_module $MODULE;
		pid $n/nginx.pid;
		error_log $n/logs/error.log warn;
		events { worker_connections 256; }
		http {
		    access_log off;
		    client_body_temp_path $n/tmp/body;
		    proxy_temp_path $n/tmp/proxy;
		    fastcgi_temp_path $n/tmp/fastcgi;
		    uwsgi_temp_path $n/tmp/uwsgi;
		    scgi_temp_path $n/tmp/scgi;
		    include $n/conf.d/*.conf;
		}
	EOF
	"$NGINX" -t -q -p "$n" -c "$n/nginx.conf" || fail "nginx -t with $geo"
	echo "nginx -t OK with $geo, tag-gateway.conf, subdomain.conf"
	"$NGINX" -p "$n" -c "$n/nginx.conf" -g 'daemon off;' &
	ngx=$!
	pids+=($ngx)
	for _ in $(seq 50); do curl -fsS -H 'Host: shop.example' "http://127.0.0.1:$NGX/" >/dev/null 2>&1 && return; sleep 0.1; done
	fail "nginx did not start"
}
stop_nginx() { kill "$ngx" && wait "$ngx" 2>/dev/null || true; }

# hit NAME FROM HOST PATH [curl args...]: one request through nginx.
hit() {
	local from=$1 host=$2 path=$3
	shift 3
	local before
	before=$(wc -l <"$t/received.jsonl")
	code=$(curl -s -o /dev/null -w '%{http_code}' --interface "$from" -H "Host: $host" -H 'User-Agent: Mozilla/5.0' "$@" "http://127.0.0.1:$NGX$path")
	[ "$code" -lt 300 ] || fail "$host$path from $from: status $code"
	for _ in $(seq 50); do [ "$(wc -l <"$t/received.jsonl")" -gt "$before" ] && break; sleep 0.05; done
	last=$(tail -n +"$((before + 1))" "$t/received.jsonl")
	[ -n "$last" ] || fail "$host$path from $from: nothing reached the upstream"
}
expect_forwarded() { # the id went through: consent covered it
	grep -q "cid=$1" <<<"$last" || fail "$2: want forwarded with cid=$1, upstream got: $last"
	echo "ok: $2"
}
expect_cookieless() { # the id did not
	grep -q "$1" <<<"$last" && fail "$2: cid $1 reached the upstream: $last"
	grep -q '"uri":"[^"]*collect' <<<"$last" || fail "$2: no ping upstream: $last"
	echo "ok: $2"
}

hitpath='g/collect?v=2&tid=G-EDGE1&en=page_view'

echo "--- phase 1: GeoIP2 database"
configure geo-geoip2.conf
[ "$(curl -s -H 'Host: shop.example' "http://127.0.0.1:$NGX/")" = site ] || fail "the site itself is not served"
hit 127.0.0.1 shop.example "/metrics/$hitpath&cid=1111.1" -H 'X-Forwarded-CountryRegion: US' -H 'CF-IPCountry: US'
expect_cookieless 1111.1 "tag gateway, visitor in DE (GeoIP2), spoofed US headers ignored: cookieless"
grep -q '"uri":"/metrics/g/collect' <<<"$last" || fail "the /metrics prefix was not kept: $last"
hit 127.0.0.2 shop.example "/metrics/$hitpath&cid=2222.2"
expect_forwarded 2222.2 "tag gateway, visitor in US (GeoIP2): forwarded"
hit 127.0.0.2 gtm.shop.example "/$hitpath&cid=3333.3" -H 'Origin: https://shop.example'
expect_forwarded 3333.3 "subdomain, visitor in US (GeoIP2): forwarded"
hit 127.0.0.1 gtm.shop.example "/$hitpath&cid=4444.4"
expect_cookieless 4444.4 "subdomain, visitor in DE (GeoIP2): cookieless"
# The decision log is flushed every second.
wait_grep() { for _ in $(seq 40); do grep -q "$1" "$2" 2>/dev/null && return; sleep 0.1; done; fail "$2 has no $1"; }
wait_grep '"region":"DE"' "$t/decisions-tag.jsonl"
wait_grep '"region":"US"' "$t/decisions-sub.jsonl"
echo "ok: the decision logs show the regions nginx set"
xff=$(grep -o '"X-Forwarded-For":"[^"]*"' <<<"$last" || true)
echo "upstream saw ${xff:-no X-Forwarded-For}"
stop_nginx

echo "--- phase 2: CDN header (127.0.0.1 stands in for the CDN)"
configure geo-cdn-header.conf
hit 127.0.0.1 shop.example "/metrics/$hitpath&cid=5555.5" -H 'CF-IPCountry: US' -H 'CF-Connecting-IP: 198.51.100.7'
expect_forwarded 5555.5 "CDN says US: forwarded"
hit 127.0.0.1 shop.example "/metrics/$hitpath&cid=6666.6" -H 'CF-IPCountry: FR' -H 'CF-Connecting-IP: 198.51.100.8'
expect_cookieless 6666.6 "CDN says FR: cookieless"
hit 127.0.0.2 shop.example "/metrics/$hitpath&cid=7777.7" -H 'CF-IPCountry: US'
expect_cookieless 7777.7 "CF-IPCountry from a non-CDN peer is ignored: region unknown, cookieless"
stop_nginx
echo "nginx recipe test OK"
