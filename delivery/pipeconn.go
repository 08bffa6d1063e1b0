package delivery

import (
	"bufio"
	"crypto/tls"
	"errors"
	"math"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// pconn is one upstream connection that carries queued hits as pipelined
// HTTP/1.1 requests (RFC 9112 §9.3): its lane's sender writes a batch of
// hits with one write, and its reader matches the answers to them in
// order, reading as many answers per system call as have arrived. A hit
// is settled only by its own answer; when the connection breaks, every
// hit it had not answered yet is handed back for a retry.
type pconn struct {
	nc      net.Conn
	sink    pconnSink
	timeout time.Duration // an answer is due this long after its request was written
	maxBody int

	mu       sync.Mutex
	inflight []*queued // written, unanswered, oldest first, from head
	head     int
	dead     bool
	room     chan struct{} // the reader freed a slot (cap 1)
	done     chan struct{} // closed when the reader has ended
}

// pconnSink receives what a pconn learns about its hits. Both are called
// from the reader's goroutine.
type pconnSink interface {
	// answered settles q with its answer. resp is valid during the call.
	answered(q *queued, resp *fasthttp.Response, latency time.Duration)
	// broken hands back hits that were written but not answered when the
	// connection failed with err.
	broken(qs []*queued, err error)
	// wrote and read count the connection's system calls.
	wrote(hits int)
	read()
}

// countingConn counts the reads of a connection (the system calls, below
// TLS).
type countingConn struct {
	net.Conn
	sink pconnSink
}

func (c countingConn) Read(b []byte) (int, error) {
	c.sink.read()
	return c.Conn.Read(b)
}

var (
	errUnsolicited = errors.New("proxy: upstream answered a request it was not sent")
	errConnClosed  = errors.New("proxy: upstream closed the connection")
	errConnDead    = errors.New("proxy: upstream connection already failed")
)

// upConn is one upstream connection as a sender uses it: HTTP/1.1 with
// pipelining (pconn) or HTTP/2 (h2conn, for TLS upstreams that offer it).
// Its reader settles hits through the lane's pconnSink.
type upConn interface {
	// pending is the number of hits written and not answered.
	pending() int
	// limit is the most hits the connection carries at once by the
	// upstream's word (HTTP/2's SETTINGS_MAX_CONCURRENT_STREAMS); the
	// sender's window applies as well.
	limit() int
	// alive reports whether the connection can take more hits.
	alive() bool
	// send writes batch. With errConnDead nothing was sent and batch is
	// still the caller's; otherwise the hits belong to the connection
	// (a failure hands them back through the sink). buf is scratch space,
	// returned grown.
	send(batch []*queued, buf []byte, now time.Time) ([]byte, error)
	// roomCh receives when an answer freed a slot or the connection failed.
	roomCh() <-chan struct{}
	// close ends the connection; unanswered hits come back through the sink.
	close()
	// oldest is the accept time (Unix nanoseconds) of the oldest hit
	// written and not answered, 0 when none.
	oldest() int64
}

// dialUp connects to hc's address. Over TLS it offers HTTP/2 and
// HTTP/1.1 (ALPN) and speaks what the upstream picks; plain connections
// are HTTP/1.1.
func dialUp(hc *fasthttp.HostClient, host string, timeout time.Duration, h2 bool, sink pconnSink) (upConn, error) {
	dial := hc.Dial
	if dial == nil {
		dial = func(addr string) (net.Conn, error) { return (&net.Dialer{Timeout: timeout}).Dial("tcp", addr) }
	}
	raw, err := dial(hc.Addr)
	if err != nil {
		return nil, err
	}
	nc := net.Conn(countingConn{raw, sink})
	if hc.IsTLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if hc.TLSConfig != nil {
			cfg = hc.TLSConfig.Clone()
		}
		if cfg.ServerName == "" {
			name, _, err := net.SplitHostPort(hc.Addr)
			if err != nil {
				name = host
			}
			cfg.ServerName = name
		}
		cfg.NextProtos = []string{"http/1.1"}
		if h2 {
			cfg.NextProtos = []string{"h2", "http/1.1"}
		}
		below := &heldConn{Conn: nc}
		tc := tls.Client(below, cfg)
		_ = tc.SetDeadline(time.Now().Add(timeout))
		if err := tc.Handshake(); err != nil {
			_ = raw.Close()
			return nil, err
		}
		_ = tc.SetDeadline(time.Time{})
		nc = &recordBatcher{Conn: tc, below: below}
		if tc.ConnectionState().NegotiatedProtocol == "h2" {
			return newH2Conn(nc, host, timeout, hc.MaxResponseBodySize, sink)
		}
	}
	return newPconn(nc, timeout, hc.MaxResponseBodySize, sink), nil
}

// newPconn starts the HTTP/1.1 reader of nc.
func newPconn(nc net.Conn, timeout time.Duration, maxBody int, sink pconnSink) *pconn {
	c := &pconn{nc: nc, sink: sink, timeout: timeout, maxBody: maxBody,
		room: make(chan struct{}, 1), done: make(chan struct{})}
	go c.read()
	return c
}

func (c *pconn) roomCh() <-chan struct{} { return c.room }

func (c *pconn) oldest() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return oldestOf(c.inflight[c.head:])
}

// oldestOf is the earliest accept time among qs, 0 when empty.
func oldestOf(qs []*queued) int64 {
	oldest := int64(0)
	for _, q := range qs {
		if oldest == 0 || q.at < oldest {
			oldest = q.at
		}
	}
	return oldest
}

// pending is the number of hits written and not answered.
func (c *pconn) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.inflight) - c.head
}

// limit: an HTTP/1.1 upstream states none; the sender's window applies.
func (c *pconn) limit() int { return math.MaxInt }

// alive reports whether the connection can take more hits.
func (c *pconn) alive() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.dead
}

// send writes the requests of batch with one write, buf being scratch
// space (returned grown). With errConnDead nothing was sent and batch is
// still the caller's. Otherwise the hits belong to the connection: a write
// error closes it and its reader hands every unanswered hit, batch
// included, back to the sink.
func (c *pconn) send(batch []*queued, buf []byte, now time.Time) ([]byte, error) {
	buf = buf[:0]
	for _, q := range batch {
		buf = append(buf, q.wire...)
	}
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return buf, errConnDead
	}
	if c.head == len(c.inflight) {
		c.inflight, c.head = c.inflight[:0], 0
		_ = c.nc.SetReadDeadline(now.Add(c.timeout))
	}
	for _, q := range batch {
		q.sent = now.UnixNano()
	}
	c.inflight = append(c.inflight, batch...)
	c.mu.Unlock()
	_ = c.nc.SetWriteDeadline(now.Add(c.timeout))
	c.sink.wrote(len(batch))
	if _, err := c.nc.Write(buf); err != nil {
		_ = c.nc.Close() // the reader fails and hands the hits back
		return buf, err
	}
	return buf, nil
}

// read matches answers to requests until the connection fails.
func (c *pconn) read() {
	defer close(c.done)
	br := bufio.NewReaderSize(c.nc, 16<<10)
	var resp fasthttp.Response
	for {
		if br.Buffered() == 0 {
			// About to block: the oldest unanswered request bounds the wait.
			c.mu.Lock()
			if c.head < len(c.inflight) {
				_ = c.nc.SetReadDeadline(time.Unix(0, c.inflight[c.head].sent).Add(c.timeout))
			} else {
				_ = c.nc.SetReadDeadline(time.Time{})
			}
			c.mu.Unlock()
		}
		resp.Reset()
		err := resp.ReadLimitBody(br, c.maxBody)
		if err != nil {
			c.fail(err)
			return
		}
		c.mu.Lock()
		var q *queued
		if c.head < len(c.inflight) {
			q = c.inflight[c.head]
			c.inflight[c.head] = nil
			c.head++
		}
		c.mu.Unlock()
		if q == nil {
			c.fail(errUnsolicited)
			return
		}
		c.sink.answered(q, &resp, time.Since(time.Unix(0, q.sent)))
		select {
		case c.room <- struct{}{}:
		default:
		}
		if resp.ConnectionClose() {
			c.fail(errConnClosed)
			return
		}
	}
}

// fail closes the connection and hands its unanswered hits back.
func (c *pconn) fail(err error) {
	_ = c.nc.Close()
	c.mu.Lock()
	c.dead = true
	rest := c.inflight[c.head:]
	c.inflight, c.head = nil, 0
	c.mu.Unlock()
	if len(rest) > 0 {
		c.sink.broken(rest, err)
	}
	select {
	case c.room <- struct{}{}:
	default:
	}
}

// close ends the connection; unanswered hits are handed back by the reader.
func (c *pconn) close() {
	_ = c.nc.Close()
	<-c.done
}
