package proxy

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/consentgate/consentgate/config"
)

// The public listener's defences against clients that hold resources:
//
//   - listener: accept errors (out of file descriptors, buffers, memory)
//     back off and retry instead of ending Serve, logged once per
//     interval and counted; one client address gets at most
//     limits.max_conns_per_ip connections (IPv6 by /64; trusted proxies
//     are exempt).
//   - budget: at most limits.max_reading_requests requests being read
//     (header or body still arriving) and limits.max_buffered_bytes
//     request bytes held by requests in progress. When either is full,
//     the request that has been reading longest (at least evictAge) is
//     cut with 503 to make room; if none is that old, the newcomer gets
//     503. A stalled client cannot hold memory that fast clients need.

// evictAge is how long a request must have been reading before a
// newcomer may push it out. Below it, the newcomer is refused: a burst of
// fast requests does not cut each other short.
const evictAge = 250 * time.Millisecond

// MaxConnections returns the cap on client connections for cfg:
// limits.max_connections, or when it is 0 the open-file limit less a
// quarter of it (at least 256) kept for upstream connections, the spool
// and files, at least 64 and at most autoMaxConnections. nofile is the
// soft open-file limit (0 if unknown).
func MaxConnections(cfg *config.Config) (n int, nofile uint64) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil {
		nofile = rl.Cur
	}
	if cfg.Limits.MaxConnections > 0 {
		return cfg.Limits.MaxConnections, nofile
	}
	if nofile == 0 || nofile > 1<<40 {
		return autoMaxConnections, nofile
	}
	reserve := max(nofile/4, 256)
	if nofile <= reserve+64 {
		return 64, nofile
	}
	return int(min(nofile-reserve, autoMaxConnections)), nofile
}

// autoMaxConnections bounds the derived max_connections: an open
// connection costs about 7 KiB even idle, so 65536 of them are about
// 450 MiB (docs/limits.md). Set limits.max_connections to go higher.
const autoMaxConnections = 65536

// RaiseFileLimit raises the soft open-file limit to the hard limit and
// returns the limit in force.
func RaiseFileLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return rl.Cur, err
		}
	}
	return rl.Cur, nil
}

// listener wraps the public listener. It refuses connections over
// max_connections itself (503, Retry-After, counted); fasthttp's own
// concurrency limit sits above it as a backstop.
type listener struct {
	net.Listener
	h      *Handler
	log    *zap.Logger
	b      *budget
	closed chan struct{}
	once   sync.Once
	// perIPLimit is limits.max_conns_per_ip at start (limits need a restart).
	perIPLimit int
	// maxConns is MaxConnections at start; open counts the connections.
	maxConns int64
	open     atomic.Int64
	// reserve is one descriptor held back (public listener only): when
	// accept fails with EMFILE it is given up to accept the waiting
	// client and answer it 503, then taken again, so clients are refused
	// at once instead of waiting in the backlog. Only Accept's goroutine
	// touches it, and Close under resMu.
	reserve *os.File
	resMu   sync.Mutex

	mu    sync.Mutex
	perIP map[netip.Prefix]int

	// lastLog and suppressed rate-limit the accept error log.
	lastLog    time.Time
	suppressed int
}

// acceptLogEvery is how often a persisting accept error is logged.
const acceptLogEvery = 10 * time.Second

func newListener(ln net.Listener, h *Handler, log *zap.Logger, b *budget) *listener {
	maxConns, _ := MaxConnections(h.Config())
	l := &listener{Listener: ln, h: h, log: log, b: b, closed: make(chan struct{}), perIP: map[netip.Prefix]int{},
		perIPLimit: h.Config().Limits.MaxConnsPerIP, maxConns: int64(maxConns)}
	if b != nil {
		l.reserve, _ = os.Open(os.DevNull) // nil if it fails: then EMFILE only backs off
	}
	return l
}

// Close stops Accept, also while it is backing off, and gives back the
// reserve descriptor.
func (l *listener) Close() error {
	l.once.Do(func() { close(l.closed) })
	err := l.Listener.Close() // first: it unblocks an Accept inside shed
	l.resMu.Lock()
	if l.reserve != nil {
		_ = l.reserve.Close()
		l.reserve = nil
	}
	l.resMu.Unlock()
	return err
}

// takeReserve opens the reserve descriptor again if a race for the last
// descriptor lost it.
func (l *listener) takeReserve() {
	l.resMu.Lock()
	defer l.resMu.Unlock()
	select {
	case <-l.closed:
	default:
		if l.reserve == nil {
			l.reserve, _ = os.Open(os.DevNull)
		}
	}
}

// shed gives up the reserve descriptor to accept one waiting client and
// refuse it, then takes the descriptor back. It reports whether a client
// was refused.
func (l *listener) shed() bool {
	l.resMu.Lock()
	if l.reserve == nil {
		l.resMu.Unlock()
		return false
	}
	_ = l.reserve.Close()
	l.reserve = nil
	l.resMu.Unlock()
	c, err := l.Listener.Accept() // Close unblocks it
	if err == nil {
		l.h.metrics.rejected(rejectNoDescriptors)
		refuse(c, rejectNoDescriptors) // closes c: its descriptor is free for the reserve again
	}
	l.takeReserve()
	return err == nil
}

// Accept returns the next connection. Errors that say the process or the
// system is short of a resource (file descriptors, buffers, memory) or
// that concern one aborted connection back off (5 ms doubling to 1 s) and
// retry: one client exhausting descriptors must not end the server.
// Only a closed or broken listener ends Accept.
func (l *listener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			kind, retry := acceptErrorKind(err)
			if !retry {
				return nil, err
			}
			select {
			case <-l.closed:
				return nil, net.ErrClosed
			default:
			}
			l.h.metrics.acceptError(kind)
			l.logAcceptError(kind, err)
			if kind == acceptEMFILE && l.shed() {
				delay = 0
				continue
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-l.closed:
				t.Stop()
				return nil, net.ErrClosed
			}
			continue
		}
		delay = 0
		if l.b == nil {
			return c, nil // the admin listener: only the accept backoff
		}
		l.takeReserve()
		if l.open.Load() >= l.maxConns {
			l.h.metrics.rejected(rejectMaxConnections)
			refuse(c, rejectMaxConnections)
			continue
		}
		key, capped := l.ipKey(c)
		if capped && !l.admit(key) {
			l.h.metrics.rejected(rejectPerIPLimit)
			refuse(c, rejectPerIPLimit)
			continue
		}
		l.open.Add(1)
		pc := &conn{Conn: c, l: l, b: l.b, key: key, capped: capped}
		if sc, ok := c.(syscall.Conn); ok {
			if rc, err := sc.SyscallConn(); err == nil {
				pc.ra.rc = rc
			}
		}
		return pc, nil
	}
}

// acceptErrorKind labels an accept error and says whether to retry; kind
// means nothing when retry is false.
func acceptErrorKind(err error) (kind acceptErrKind, retry bool) {
	switch {
	case errors.Is(err, net.ErrClosed), errors.Is(err, io.EOF):
		return acceptOther, false
	case errors.Is(err, syscall.EMFILE):
		return acceptEMFILE, true
	case errors.Is(err, syscall.ENFILE):
		return acceptENFILE, true
	case errors.Is(err, syscall.ENOBUFS):
		return acceptENOBUFS, true
	case errors.Is(err, syscall.ENOMEM):
		return acceptENOMEM, true
	case errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPROTO),
		errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EINTR):
		return acceptOther, true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return acceptOther, true
	}
	return acceptOther, false
}

func (l *listener) logAcceptError(kind acceptErrKind, err error) {
	l.mu.Lock()
	now := time.Now()
	if now.Sub(l.lastLog) < acceptLogEvery {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	n := l.suppressed
	l.lastLog, l.suppressed = now, 0
	l.mu.Unlock()
	l.log.Warn("accept failed; backing off and retrying (raise the open-file limit or lower limits.max_connections)",
		zap.String("kind", kind.String()), zap.Error(err), zap.Int("since_last_log", n))
}

// ipKey returns the per-IP key of c (the address, IPv6 by /64) and
// whether the per-IP cap applies (not for trusted proxies).
func (l *listener) ipKey(c net.Conn) (netip.Prefix, bool) {
	a, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return netip.Prefix{}, false
	}
	ip, _ := netip.AddrFromSlice(a.IP)
	ip = ip.Unmap()
	if !ip.IsValid() || trusted(l.h.Config().TrustedProxies, ip) {
		return netip.Prefix{}, false
	}
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p, true
}

func (l *listener) admit(key netip.Prefix) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perIP[key] >= l.perIPLimit {
		return false
	}
	l.perIP[key]++
	return true
}

func (l *listener) release(key netip.Prefix) {
	l.mu.Lock()
	if n := l.perIP[key]; n <= 1 {
		delete(l.perIP, key)
	} else {
		l.perIP[key] = n - 1
	}
	l.mu.Unlock()
}

// refuse answers c with 503 (reason as the body, Retry-After: 1) and
// closes it, never blocking the accept loop for long. Nothing is read.
func refuse(c net.Conn, r rejectReason) {
	reason := r.String()
	_ = c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	_, _ = io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\n"+
		"Connection: close\r\nContent-Length: "+strconv.Itoa(len(reason)+1)+"\r\n\r\n"+reason+"\n")
	_ = c.Close()
}

// conn is one public connection: it counts the bytes its requests read
// against the budget and can be cut by it.
type conn struct {
	net.Conn
	l      *listener
	b      *budget
	key    netip.Prefix
	capped bool
	closed atomic.Bool

	// Budget state, guarded by b.mu (held is also read atomically).
	prev, next *conn
	listed     bool
	since      time.Time
	held       atomic.Int64 // request bytes read since the last request ended
	cut        atomic.Bool  // over budget: reads fail, the request gets 503

	ra readAhead // read by fasthttp's one reading goroutine only
}

// Read reads from the connection and counts the bytes against the
// budget. A connection the budget cut fails with errOverBudget.
func (c *conn) Read(p []byte) (int, error) {
	if c.cut.Load() {
		return 0, errOverBudget
	}
	var n int
	var err error
	if c.ra.rc != nil {
		n, err = c.ra.read(p)
	} else {
		n, err = c.Conn.Read(p)
	}
	if n > 0 && c.b != nil {
		c.held.Add(int64(n))
		if c.b.bytes.Add(int64(n)) > c.b.maxBytes && !c.b.makeRoom(c) {
			c.cut.Store(true)
			return n, errOverBudget
		}
	}
	if err != nil && c.cut.Load() {
		err = errOverBudget
	}
	return n, err
}

// Close closes the connection once and gives back its per-IP slot.
func (c *conn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	if c.capped {
		c.l.release(c.key)
	}
	c.l.open.Add(-1)
	return c.Conn.Close()
}

// budget bounds the requests being read and the request bytes held.
type budget struct {
	maxReading int
	maxBytes   int64
	// small is what a request may always read even over the byte budget
	// (a header's worth: plain hits are never refused for bytes).
	small int64
	// minAge is evictAge (tests change it before traffic starts).
	minAge time.Duration

	bytes atomic.Int64
	mu    sync.Mutex
	n     int   // requests being read
	head  *conn // longest reading
	tail  *conn
}

func newBudget(l config.Limits) *budget {
	return &budget{maxReading: l.MaxReadingRequests, maxBytes: int64(l.MaxBufferedBytes), small: int64(l.MaxHeaderBytes), minAge: evictAge}
}

// connState follows fasthttp's connection states: a connection starts
// reading at StateActive; its bytes are given back when the request has
// been answered (StateIdle) or the connection closed.
func (b *budget) connState(nc net.Conn, st fasthttp.ConnState) {
	c, ok := nc.(*conn)
	if !ok {
		return
	}
	switch st {
	case fasthttp.StateActive:
		b.startReading(c)
	case fasthttp.StateIdle, fasthttp.StateClosed, fasthttp.StateHijacked:
		b.mu.Lock()
		b.unlink(c)
		b.mu.Unlock()
		b.bytes.Add(-c.held.Swap(0))
		if st == fasthttp.StateIdle {
			c.cut.Store(false)
		}
	}
}

// startReading enters c in the list of requests being read, making room
// by cutting the longest reader if the list is full.
func (b *budget) startReading(c *conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.n >= b.maxReading {
		if b.head == nil || time.Since(b.head.since) < b.minAge {
			c.cut.Store(true) // the newcomer's next read fails: 503
			return
		}
		b.cutLocked(b.head)
	}
	c.since = time.Now()
	c.listed = true
	c.prev, c.next = b.tail, nil
	if b.tail != nil {
		b.tail.next = c
	} else {
		b.head = c
	}
	b.tail = c
	b.n++
}

// doneReading takes c off the list: its request has been read.
func (b *budget) doneReading(c *conn) {
	b.mu.Lock()
	b.unlink(c)
	b.mu.Unlock()
}

func (b *budget) unlink(c *conn) {
	if !c.listed {
		return
	}
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		b.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		b.tail = c.prev
	}
	c.prev, c.next, c.listed = nil, nil, false
	b.n--
}

// cutLocked cuts c: its blocked read returns at once and fails.
func (b *budget) cutLocked(c *conn) {
	b.unlink(c)
	c.cut.Store(true)
	_ = c.Conn.SetReadDeadline(time.Unix(1, 0))
}

// makeRoom is called by c when the byte budget is exceeded. It cuts the
// longest readers (reading for at least evictAge, other than c) until
// what they hold covers the excess, and reports whether c may go on: it
// may if room was made or it holds no more than a header's worth.
func (b *budget) makeRoom(c *conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	excess := b.bytes.Load() - b.maxBytes
	now := time.Now()
	for v := b.head; v != nil && excess > 0; {
		next := v.next
		if now.Sub(v.since) < b.minAge {
			break // the list is in reading order: the rest are younger
		}
		if v != c {
			excess -= v.held.Load()
			b.cutLocked(v)
		}
		v = next
	}
	return excess <= 0 || c.held.Load() <= b.small
}

// reading returns the requests being read and the bytes held, for the gauges.
func (b *budget) reading() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}
