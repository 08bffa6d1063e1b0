package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/consentgate/consentgate/config"
)

// upstream is one upstream host: its client and how to address it.
type upstream struct {
	client *fasthttp.HostClient
	scheme string // "https" or "http"
	host   string // Host header value ("region1.google-analytics.com")
}

// clients hands out one HostClient per scheme and host:port, created on
// first use and kept for the life of the Handler, so a reload reuses warm
// connections. The set of hosts is bounded by the route table plus the
// configured upstream.
type clients struct {
	mu   sync.Mutex
	m    map[string]*fasthttp.HostClient
	dial fasthttp.DialFunc
}

func newClients(dial fasthttp.DialFunc) *clients {
	if dial == nil {
		d := &fasthttp.TCPDialer{Concurrency: 1000, DNSCacheDuration: time.Minute}
		dial = d.Dial
	}
	return &clients{m: map[string]*fasthttp.HostClient{}, dial: dial}
}

// get returns the upstream for scheme and host ("host" or "host:port").
func (cs *clients) get(scheme, host string, c *config.Config) upstream {
	addr := host
	if _, _, err := net.SplitHostPort(host); err != nil {
		if scheme == "https" {
			addr = host + ":443"
		} else {
			addr = host + ":80"
		}
	}
	key := scheme + "://" + addr
	cs.mu.Lock()
	defer cs.mu.Unlock()
	hc := cs.m[key]
	if hc == nil {
		l, t := c.Limits, c.Timeouts
		hc = &fasthttp.HostClient{
			Addr:                          addr,
			IsTLS:                         scheme == "https",
			Dial:                          cs.dial,
			MaxConns:                      l.MaxConnsPerUpstream,
			MaxConnWaitTimeout:            t.UpstreamConnWait,
			MaxIdleConnDuration:           t.UpstreamIdle,
			MaxConnDuration:               5 * time.Minute,
			ReadTimeout:                   t.Upstream,
			WriteTimeout:                  t.Upstream,
			ReadBufferSize:                32 << 10,
			MaxResponseBodySize:           l.MaxResponseBytes,
			DisablePathNormalizing:        true,
			NoDefaultUserAgentHeader:      true,
			DisableHeaderNamesNormalizing: false,
			ConnPoolStrategy:              fasthttp.LIFO,
			// Beacons are not idempotent for Google: retry only a request
			// that never reached the upstream (a stale pooled connection).
			MaxIdemponentCallAttempts: 2,
			RetryIfErr: func(_ *fasthttp.Request, attempts int, err error) (resetTimeout, retry bool) {
				return false, attempts < 2 && (errors.Is(err, fasthttp.ErrConnectionClosed) || errors.Is(err, io.EOF))
			},
		}
		if hc.IsTLS {
			hc.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ClientSessionCache: tls.NewLRUClientSessionCache(64)}
		}
		cs.m[key] = hc
	}
	return upstream{client: hc, scheme: scheme, host: host}
}

// closeIdle closes idle upstream connections (at shutdown).
func (cs *clients) closeIdle() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, hc := range cs.m {
		hc.CloseIdleConnections()
	}
}
