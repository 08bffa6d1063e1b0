package proxy

import (
	"bytes"
	"compress/gzip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/valyala/fasthttp"
	"golang.org/x/sync/singleflight"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/consentmode"
)

// Tag scripts (gtag.js, gtm.js) are the same for every visitor of a region
// and change rarely: the gateway serves them from a ristretto cache.
//
//   - The key is the path, the script parameters that select the script
//     (others, such as cache busters, are dropped before the upstream fetch,
//     so they cannot flood the cache) and the region (Google varies scripts
//     by geo).
//   - Only 200s are cached, fresh for the upstream's Cache-Control max-age
//     clamped to [cache.min_ttl, cache.max_ttl], kept cache.stale_for longer.
//   - One upstream fetch per key at a time: concurrent misses wait for it.
//   - Stale-while-revalidate: an expired entry still within its stale
//     window is served at once while one background refresh per key runs;
//     a slow or hanging upstream never holds up a script request that has
//     a cached copy.
//   - Variants are bounded. Every script parameter but id (l, cx, gtm,
//     gtm_*) comes from the client and changes the key; a tag (path, id
//     and region) has at most maxScriptVariants variants besides its plain
//     one fetched per window (cache.max_ttl + cache.stale_for). A further
//     variant is answered 429 script_variants without reaching Google, so
//     a client cannot make every script request a fetch.
//   - Entries cost their bytes; the cache holds at most cache.max_bytes.
//   - ristretto sets are asynchronous and may be dropped: callers never
//     depend on a hit, a fetch hands its result to every waiter directly.

// cacheResult labels consentgate_script_cache_total: how a script request
// was served.
type cacheResult uint8

const (
	cacheHit       cacheResult = iota // a fresh cached copy
	cacheMiss                         // fetched from the upstream
	cacheStale                        // an expired copy, while one refresh runs
	cacheError                        // not cached and the fetch failed
	cacheCoalesced                    // waited for another request's fetch
	numCacheResults
)

var cacheResultNames = [numCacheResults]string{"hit", "miss", "stale", "error", "coalesced"}

func (r cacheResult) String() string { return cacheResultNames[r] }

// scriptParams are the query parameters that select a script; in this order
// they form the cache key and the upstream query.
var scriptParams = []string{"id", "l", "cx", "gtm", "gtm_auth", "gtm_preview", "gtm_cookies_win", "gtm_debug"}

// scriptEntry is one cached script. It is immutable once stored, but for
// refreshing.
type scriptEntry struct {
	key          string
	body         []byte
	gzip         []byte // body gzip-compressed, for clients that accept it
	contentType  string
	etag         string
	lastModified string
	fetched      time.Time
	freshUntil   time.Time
	// refreshing is set while a background refresh of this (expired)
	// entry runs, so that the stale requests meanwhile start no further
	// one; the refresh clears it when it ends, whether or not its result
	// replaced the entry.
	refreshing atomic.Bool
}

// scriptCache holds the cache and the in-flight fetches.
type scriptCache struct {
	c *ristretto.Cache[[]byte, *scriptEntry]
	// flight runs one upstream fetch per key at a time, misses and
	// background refreshes alike; a caller that arrives while one runs
	// gets its result.
	flight singleflight.Group
	mu     sync.Mutex
	// variants maps a tag's key (scriptTagKey) to its variants; under mu.
	variants map[string]*variantSet
	// wg counts background refreshes; close waits for them.
	wg sync.WaitGroup
	// waiting, when set (by tests, before any request), runs each time a
	// caller of fetch has joined the key's in-flight fetch (the one it
	// started or another's) and is about to wait for its result.
	waiting func()
}

// maxScriptVariants bounds the variants of one tag (path, id and region)
// besides the plain one: a site uses one dataLayer name (l) and, in GTM
// preview, one environment at a time, and gtag moves to a new gtm version
// now and then; 8 leaves room for that with old versions still cached.
const maxScriptVariants = 8

// maxScriptTags bounds the tags whose variants are tracked. When full the
// record starts afresh: each new tag id is an upstream fetch anyway (the
// tag allowlist is what bounds those).
const maxScriptTags = 4096

// variantSet is one tag's variants fetched in the current window.
type variantSet struct {
	n     int
	keys  [maxScriptVariants]string
	until [maxScriptVariants]time.Time // when each slot may be reused
}

func newScriptCache(maxBytes int64) (*scriptCache, error) {
	// ristretto admits entries with TinyLFU. While the cache has room
	// (cache.max_bytes, 64 MiB by default: some hundreds of scripts of
	// 100 to 300 KB with their gzip copy) every Set is kept. Once it is
	// full, a new entry is kept only if its estimated request count (a
	// count-min sketch over NumCounters keys behind a doorkeeper bloom
	// filter, halved now and then so counts age) is at least that of the
	// least requested of a sample of cached entries; otherwise the Set is
	// rejected. A script requested once therefore counts about 1 and is
	// dropped rather than evicting a script that sites keep loading. That
	// is what we want: the one request is still answered (fetch hands
	// the fetched entry to its callers, it never reads it back from the
	// cache), only its next request fetches again, and once a script is
	// requested again and again it wins its place. A flood of one-off keys
	// (new tag ids, regions, variants within their bound) thus costs
	// upstream fetches, which the tag allowlist and the variant bound
	// limit, but cannot push the popular scripts out. An entry larger than
	// MaxCost is never kept. NumCounters (10,000) is about ten times the
	// entries a full default cache holds, as ristretto advises.
	c, err := ristretto.NewCache(&ristretto.Config[[]byte, *scriptEntry]{
		NumCounters:        10_000,
		MaxCost:            maxBytes,
		BufferItems:        64,
		IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, err
	}
	return &scriptCache{c: c, variants: map[string]*variantSet{}}, nil
}

// close waits for background refreshes (each bounded by the upstream
// timeout), then stops the cache.
func (s *scriptCache) close() {
	s.wg.Wait()
	s.c.Close()
}

// refresh runs f in the background to replace the expired entry old,
// unless a refresh of old already runs; callers that miss meanwhile wait
// for its result as for fetch. If a fetch of key is already in flight the
// refresh joins it rather than fetching again.
func (s *scriptCache) refresh(old *scriptEntry, key string, f func() (*scriptEntry, error)) {
	if !old.refreshing.CompareAndSwap(false, true) {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer old.refreshing.Store(false)
		_, _, _ = s.flight.Do(key, func() (any, error) { return f() })
	}()
}

// get returns the cached entry for key, fresh or stale, if ristretto has it.
func (s *scriptCache) get(key []byte) *scriptEntry {
	e, ok := s.c.Get(key)
	if !ok || e.key != string(key) {
		return nil
	}
	return e
}

// fetch runs f once per key at a time: concurrent callers for the same key
// wait for the first one's result. coalesced reports that the result came
// from another caller's fetch (or a background refresh).
//
// DoChan rather than Do: it returns once the caller has joined the flight,
// which is where the waiting hook runs; f runs in a goroutine of its own.
func (s *scriptCache) fetch(key string, f func() (*scriptEntry, error)) (e *scriptEntry, err error, coalesced bool) {
	led := false
	ch := s.flight.DoChan(key, func() (any, error) {
		led = true // only the caller whose f runs; read after the result arrives
		return f()
	})
	if s.waiting != nil {
		s.waiting()
	}
	r := <-ch
	e, _ = r.Val.(*scriptEntry)
	return e, r.Err, !led
}

// store adds an entry and waits until ristretto has applied it (sets are
// asynchronous), so requests arriving after this fetch see it. Only the
// miss path pays the wait. ristretto may still drop or reject the entry.
func (s *scriptCache) store(e *scriptEntry, keep time.Duration) {
	s.c.SetWithTTL([]byte(e.key), e, int64(len(e.body)+len(e.gzip)), keep)
	s.c.Wait()
}

// admit reports whether the variant of a tag may be fetched: it is one
// of the tag's variants of the window, or a slot is free (never used, or
// its window over). Admitted variants hold their slot until now+window.
func (s *scriptCache) admit(tag, variant []byte, now time.Time, window time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	vs := s.variants[string(tag)]
	if vs == nil {
		if len(s.variants) >= maxScriptTags {
			clear(s.variants)
		}
		vs = &variantSet{}
		s.variants[string(tag)] = vs
	}
	free := -1
	for i := range vs.n {
		if vs.keys[i] == string(variant) {
			vs.until[i] = now.Add(window)
			return true
		}
		if free < 0 && now.After(vs.until[i]) {
			free = i
		}
	}
	if free < 0 && vs.n < maxScriptVariants {
		free = vs.n
		vs.n++
	}
	if free < 0 {
		return false
	}
	vs.keys[free], vs.until[free] = string(variant), now.Add(window)
	return true
}

// scriptTagKey appends the key of a tag for the variant bound: upstream,
// path, id and region. variant is what the request adds to it: the
// selecting parameters other than id (empty for the plain script).
func scriptTagKey(dst []byte, up upstream, cfg *config.Config, path []byte, args *fasthttp.Args, region consentmode.Region) (tag, variant []byte) {
	dst = append(append(dst, up.host...), cfg.PathPrefix...)
	dst = append(dst, path...)
	dst = append(dst, "?id="...)
	dst = fasthttp.AppendQuotedArg(dst, args.Peek("id"))
	dst = append(append(dst, '|'), region.String()...)
	mark := len(dst)
	for _, name := range scriptParams[1:] {
		if v := args.Peek(name); v != nil {
			dst = append(append(append(dst, '&'), name...), '=')
			dst = fasthttp.AppendQuotedArg(dst, v)
		}
	}
	return dst[:mark], dst[mark:]
}

// scriptKey appends the cache key: path, the selecting parameters in a
// fixed order, and the region.
func scriptKey(dst []byte, path []byte, args *fasthttp.Args, region consentmode.Region) []byte {
	dst = append(dst, path...)
	dst = appendScriptQuery(append(dst, '?'), args)
	dst = append(dst, '|')
	return append(dst, region.String()...)
}

// appendScriptQuery appends the selecting parameters of args, escaped.
func appendScriptQuery(dst []byte, args *fasthttp.Args) []byte {
	first := true
	for _, name := range scriptParams {
		v := args.Peek(name)
		if v == nil {
			continue
		}
		if !first {
			dst = append(dst, '&')
		}
		first = false
		dst = append(dst, name...)
		dst = append(dst, '=')
		dst = fasthttp.AppendQuotedArg(dst, v)
	}
	return dst
}

// scriptURI is the upstream URI of a script request.
func scriptURI(dst []byte, up upstream, cfg *config.Config, path []byte, args *fasthttp.Args) []byte {
	dst = append(dst, up.scheme...)
	dst = append(dst, "://"...)
	dst = append(dst, up.host...)
	if cfg.Upstream != nil {
		dst = append(dst, cfg.PathPrefix...)
	}
	dst = append(dst, path...)
	if q := appendScriptQuery(nil, args); len(q) > 0 {
		dst = append(append(dst, '?'), q...)
	}
	return dst
}

// serveScript answers a script request from the cache: a fresh entry as
// it is, an expired one within its stale window at once while one
// background refresh runs, and a miss by fetching (concurrent misses wait
// for one fetch).
func (h *Handler) serveScript(ctx *fasthttp.RequestCtx, p *prepared, reg consentmode.Region, start time.Time) {
	cfg, path := p.cfg, p.path
	now := p.now
	args := ctx.QueryArgs()
	kb := h.reqs.Get().(*outbound) // its uri buffer holds the key
	defer h.reqs.Put(kb)
	key := append(append(kb.uri[:0], p.up.host...), cfg.PathPrefix...) // a reload that moves the upstream starts afresh
	key = scriptKey(key, path, args, reg)
	kb.uri = key
	e := h.scripts.get(key)
	result := cacheHit
	switch {
	case e != nil && !now.After(e.freshUntil):
	case e != nil && now.Before(e.fetched.Add(cfg.Cache.MaxTTL+cfg.Cache.StaleFor)):
		result = cacheStale
		k, uri := string(key), string(scriptURI(nil, p.up, cfg, path, args))
		up, route := p.up, p.route
		h.scripts.refresh(e, k, func() (*scriptEntry, error) { return h.fetchScript(cfg, up, route, k, uri, reg) })
	default:
		tag, variant := scriptTagKey(nil, p.up, cfg, path, args, reg)
		if len(variant) > 0 && !h.scripts.admit(tag, variant, now, cfg.Cache.MaxTTL+cfg.Cache.StaleFor) {
			h.writeError(ctx, errScriptVariants, p.route)
			h.record(ctx, p, ctx.Response.StatusCode(), 0, nil, start)
			return
		}
		// The fetch may run on another goroutine: it gets copies, and
		// its closure captures nothing of p, which would then escape
		// (an allocation on every request, TestProxyAllocs).
		k, uri := string(key), string(scriptURI(nil, p.up, cfg, path, args))
		up, route := p.up, p.route
		fresh, err, coalesced := h.scripts.fetch(k, func() (*scriptEntry, error) {
			return h.fetchScript(cfg, up, route, k, uri, reg)
		})
		if err != nil {
			h.metrics.scriptCache(cacheError)
			h.writeError(ctx, err, p.route)
			h.record(ctx, p, ctx.Response.StatusCode(), time.Since(start), err, start)
			return
		}
		e, result = fresh, cacheMiss
		if coalesced {
			result = cacheCoalesced
		}
	}
	h.metrics.scriptCache(result)
	writeScript(ctx, e, cfg, now)
	h.record(ctx, p, ctx.Response.StatusCode(), 0, nil, start)
}

// fetchScript gets one script (uri, from up, for the route of index
// route) from the upstream and caches a 200 under key. It keeps no request bytes: it may run after the
// request that started it has been answered.
func (h *Handler) fetchScript(cfg *config.Config, up upstream, route int, key, uri string, reg consentmode.Region) (*scriptEntry, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(uri)
	req.Header.SetMethod(fasthttp.MethodGet)
	req.Header.Set("Accept-Encoding", "identity")
	if cfg.Upstream != nil && !reg.IsUnknown() {
		req.Header.Set("X-Forwarded-CountryRegion", reg.String())
	}
	start := time.Now()
	err := up.client.DoTimeout(req, resp, cfg.Timeouts.Upstream)
	status := resp.StatusCode()
	h.metrics.upstream(route, time.Since(start), status, err)
	if err != nil {
		return nil, &upstreamError{err}
	}
	if status != fasthttp.StatusOK {
		return nil, &statusError{status}
	}
	body := resp.Body()
	if cfg.Upstream != nil {
		body = rewriteUpstreamRefs(body, cfg)
	}
	now := h.now()
	e := &scriptEntry{
		key:          key,
		body:         bytes.Clone(body),
		contentType:  string(resp.Header.ContentType()),
		etag:         string(resp.Header.Peek("ETag")),
		lastModified: string(resp.Header.Peek("Last-Modified")),
		fetched:      now,
		freshUntil:   now.Add(freshFor(resp.Header.Peek("Cache-Control"), cfg.Cache.MinTTL, cfg.Cache.MaxTTL)),
	}
	if e.contentType == "" {
		e.contentType = "application/javascript; charset=utf-8"
	}
	if e.etag == "" {
		e.etag = `"` + strconv.FormatUint(fnv64(e.body), 16) + `"`
	}
	e.gzip = gzipBytes(e.body)
	h.scripts.store(e, e.freshUntil.Sub(now)+cfg.Cache.StaleFor)
	return e, nil
}

// freshFor reads max-age (or s-maxage) from Cache-Control, clamped to
// [minTTL, maxTTL]; no-store, no-cache and private count as the minimum.
func freshFor(cc []byte, minTTL, maxTTL time.Duration) time.Duration {
	ttl := time.Duration(0)
	for len(cc) > 0 {
		var d []byte
		if i := bytes.IndexByte(cc, ','); i >= 0 {
			d, cc = cc[:i], cc[i+1:]
		} else {
			d, cc = cc, nil
		}
		d = bytes.ToLower(trimSpace(d))
		if v, ok := bytes.CutPrefix(d, []byte("max-age=")); ok && ttl == 0 {
			if n, err := strconv.Atoi(string(v)); err == nil && n > 0 {
				ttl = time.Duration(n) * time.Second
			}
		}
		if v, ok := bytes.CutPrefix(d, []byte("s-maxage=")); ok {
			if n, err := strconv.Atoi(string(v)); err == nil && n > 0 {
				ttl = time.Duration(n) * time.Second
			}
		}
	}
	return min(max(ttl, minTTL), maxTTL)
}

// writeScript answers with a cached script: 304 for a matching
// If-None-Match, gzip when the client takes it.
func writeScript(ctx *fasthttp.RequestCtx, e *scriptEntry, cfg *config.Config, now time.Time) {
	rh := &ctx.Response.Header
	rh.Set("Content-Type", e.contentType)
	rh.Set("ETag", e.etag)
	rh.Set("Vary", "Accept-Encoding")
	if e.lastModified != "" {
		rh.Set("Last-Modified", e.lastModified)
	}
	age := int(cfg.Cache.BrowserMaxAge / time.Second)
	rh.Set("Cache-Control", "public, max-age="+strconv.Itoa(age))
	if inm := ctx.Request.Header.Peek("If-None-Match"); len(inm) > 0 && bytes.Contains(inm, []byte(e.etag)) {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	body := e.body
	if ctx.Request.Header.HasAcceptEncoding("gzip") && len(e.gzip) > 0 && len(e.gzip) < len(e.body) {
		rh.Set("Content-Encoding", "gzip")
		body = e.gzip
	}
	if ctx.IsHead() {
		ctx.Response.SkipBody = true
		rh.SetContentLength(len(body))
		return
	}
	ctx.Response.SetBodyRaw(body) // immutable cached bytes
}

// rewriteUpstreamRefs points absolute references to the tag-gateway
// upstream's measurement path (plain and JSON-escaped) at the first-party
// path, so that follow-up hits come back through the gateway.
func rewriteUpstreamRefs(body []byte, cfg *config.Config) []byte {
	for _, scheme := range []string{"https://", "http://"} {
		from := scheme + cfg.Upstream.Host + cfg.PathPrefix
		for _, pair := range [2][2]string{{from, cfg.PathPrefix}, {escapeSlashes(from), escapeSlashes(cfg.PathPrefix)}} {
			if bytes.Contains(body, []byte(pair[0])) {
				body = bytes.ReplaceAll(body, []byte(pair[0]), []byte(pair[1]))
			}
		}
	}
	return body
}

func escapeSlashes(s string) string {
	return string(bytes.ReplaceAll([]byte(s), []byte("/"), []byte(`\/`)))
}

// gzipBytes compresses a script once per fetch (nil if it fails: the
// plain body is served then).
func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil
	}
	if _, err := zw.Write(b); err != nil {
		return nil
	}
	if err := zw.Close(); err != nil {
		return nil
	}
	return buf.Bytes()
}

// fnv64 is FNV-1a, for ETags of scripts that come without one.
func fnv64(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}
