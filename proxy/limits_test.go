package proxy

import (
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"

	"github.com/consentgate/consentgate/config"
)

// failingListener fails Accept with errs in turn, then hands out conn.
type failingListener struct {
	net.Listener
	errs   []error
	conn   net.Conn
	closed chan struct{}
}

func (f *failingListener) Accept() (net.Conn, error) {
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, err
	}
	if f.conn != nil {
		c := f.conn
		f.conn = nil
		return c, nil
	}
	<-f.closed
	return nil, net.ErrClosed
}

func (f *failingListener) Close() error {
	select {
	case <-f.closed:
	default:
		close(f.closed)
	}
	return nil
}

func (f *failingListener) Addr() net.Addr { return &net.TCPAddr{} }

func acceptErr(errno syscall.Errno) error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
}

// TestAcceptBacksOff: EMFILE, ENFILE, ENOBUFS and ENOMEM from accept are
// retried with backoff and counted; the listener keeps going and hands
// out the next connection. (Unwrapped, fasthttp's Serve returned on the
// first one and the process exited.) Close ends Accept in the middle of
// a backoff, at once. The listener runs in a synctest bubble: its backoff
// timers run on the bubble's clock.
func TestAcceptBacksOff(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "")
	synctest.Test(t, func(t *testing.T) {
		client, server := net.Pipe()
		defer client.Close()
		f := &failingListener{errs: []error{acceptErr(syscall.EMFILE), acceptErr(syscall.EMFILE), acceptErr(syscall.ENFILE),
			acceptErr(syscall.ENOBUFS), acceptErr(syscall.ENOMEM), acceptErr(syscall.ECONNABORTED)}, conn: server, closed: make(chan struct{})}
		l := newListener(f, g.h, zap.NewNop(), nil)
		start := time.Now()
		c, err := l.Accept()
		if err != nil || c != server {
			t.Fatalf("Accept = %v, %v; want the connection after the errors", c, err)
		}
		// Six backoffs, doubling from 5 ms: 5+10+20+40+80+160 ms.
		if d := time.Since(start); d != 315*time.Millisecond {
			t.Errorf("Accept backed off %v in all, want 315ms", d)
		}
		for kind, want := range map[acceptErrKind]uint64{acceptEMFILE: 2, acceptENFILE: 1, acceptENOBUFS: 1, acceptENOMEM: 1, acceptOther: 1} {
			if got := g.m.acceptErrs[kind].Get(); got != want {
				t.Errorf("accept_errors_total{kind=%q} = %d, want %d", kind, got, want)
			}
		}
		// Close ends Accept, also in the middle of a backoff.
		f.errs = []error{acceptErr(syscall.EMFILE), acceptErr(syscall.EMFILE), acceptErr(syscall.EMFILE), acceptErr(syscall.EMFILE),
			acceptErr(syscall.EMFILE), acceptErr(syscall.EMFILE), acceptErr(syscall.EMFILE), acceptErr(syscall.EMFILE)}
		done := make(chan error, 1)
		go func() { _, err := l.Accept(); done <- err }()
		time.Sleep(20 * time.Millisecond) // bubble time: past the 5 and 10 ms backoffs, inside the 20 ms one
		synctest.Wait()
		if len(f.errs) != 5 {
			t.Fatalf("%d accept errors left, want 5 (Accept in its third backoff)", len(f.errs))
		}
		closing := time.Now()
		_ = l.Close()
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close = %v", err)
		}
		if d := time.Since(closing); d != 0 {
			t.Errorf("Accept returned %v after Close, want at once (not when its backoff ended)", d)
		}
	})
}

func TestAcceptErrorKind(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		give  error
		kind  acceptErrKind // acceptOther when not retried
		retry bool
	}{
		{acceptErr(syscall.EMFILE), acceptEMFILE, true},
		{acceptErr(syscall.ENFILE), acceptENFILE, true},
		{acceptErr(syscall.ENOBUFS), acceptENOBUFS, true},
		{acceptErr(syscall.ENOMEM), acceptENOMEM, true},
		{acceptErr(syscall.ECONNABORTED), acceptOther, true},
		{net.ErrClosed, acceptOther, false},
		{acceptErr(syscall.EBADF), acceptOther, false},
		{acceptErr(syscall.EINVAL), acceptOther, false},
	} {
		kind, retry := acceptErrorKind(tt.give)
		if kind != tt.kind || retry != tt.retry {
			t.Errorf("acceptErrorKind(%v) = %q, %v; want %q, %v", tt.give, kind, retry, tt.kind, tt.retry)
		}
	}
}

func TestMaxConnectionsFromLimit(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{Limits: config.Limits{MaxConnections: 0}}
	n, nofile := MaxConnections(cfg)
	if nofile == 0 {
		t.Skip("no RLIMIT_NOFILE")
	}
	reserve := max(nofile/4, 256)
	if uint64(n) > nofile-reserve && n != 64 || n > autoMaxConnections || n < 64 {
		t.Errorf("MaxConnections = %d with an open-file limit of %d", n, nofile)
	}
	cfg.Limits.MaxConnections = 1234
	if n, _ := MaxConnections(cfg); n != 1234 {
		t.Errorf("configured max_connections: %d", n)
	}
}

// TestMaxConnectionsRefused: past limits.max_connections a connection
// gets 503 max_connections with Retry-After, counted; a closed one frees
// its slot.
func TestMaxConnectionsRefused(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "limits: {max_connections: 3}")
	var held []net.Conn
	for i := range 3 {
		held = append(held, g.stall(visitor(20+i), ""))
	}
	waitFor(t, func() bool { return g.srv.public.GetOpenConnectionsCount() >= 3 })
	extra := g.stall(visitor(30), "")
	resp := readResponse(t, extra)
	if resp.StatusCode() != 503 || string(resp.Body()) != "max_connections\n" || string(resp.Header.Peek("Retry-After")) != "1" {
		t.Errorf("connection over max_connections: %d %q", resp.StatusCode(), resp.Body())
	}
	_ = extra.Close()
	_ = held[0].Close()
	waitFor(t, func() bool {
		r, err := g.tryRaw(visitor(31), "GET /healthz HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n")
		return err == nil && r.Status == 200
	})
	for _, c := range held {
		_ = c.Close()
	}
	if g.m.rejectedBy[rejectMaxConnections].Get() == 0 {
		t.Error("refusal not counted")
	}
}

// TestAcceptShedsOnEMFILE: out of descriptors, the public listener gives
// up its reserve descriptor to accept the waiting client and answer it
// 503 at once, instead of leaving it in the backlog.
func TestAcceptShedsOnEMFILE(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "")
	client, server := net.Pipe()
	defer client.Close()
	f := &failingListener{errs: []error{acceptErr(syscall.EMFILE)}, conn: server, closed: make(chan struct{})}
	l := newListener(f, g.h, zap.NewNop(), g.srv.budget)
	if l.reserve == nil {
		t.Fatal("no reserve descriptor")
	}
	done := make(chan error, 1)
	go func() { _, err := l.Accept(); done <- err }()
	resp := readResponse(t, client)
	if resp.StatusCode() != 503 || string(resp.Body()) != "no_descriptors\n" || string(resp.Header.Peek("Retry-After")) != "1" {
		t.Errorf("shed client got %d %q", resp.StatusCode(), resp.Body())
	}
	_ = l.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close = %v", err)
	}
	if l.reserve != nil {
		t.Error("Close kept the reserve descriptor")
	}
	if g.m.rejectedBy[rejectNoDescriptors].Get() != 1 || g.m.acceptErrs[acceptEMFILE].Get() != 1 {
		t.Errorf("not counted: rejected %d, emfile %d", g.m.rejectedBy[rejectNoDescriptors].Get(), g.m.acceptErrs[acceptEMFILE].Get())
	}
}

// TestPerIPCapIPv6ByPrefix: one IPv6 host holds a whole /64, so the cap
// counts the /64.
func TestPerIPCapIPv6ByPrefix(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "limits: {max_conns_per_ip: 2}")
	a := &net.TCPAddr{IP: net.ParseIP("2001:db8:1:2::1"), Port: 1}
	b := &net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:ffff::9"), Port: 2}
	other := &net.TCPAddr{IP: net.ParseIP("2001:db8:1:3::1"), Port: 3}
	held := []net.Conn{g.stall(a, ""), g.stall(b, "")}
	defer func() {
		for _, c := range held {
			_ = c.Close()
		}
	}()
	third := g.stall(&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:abcd::1"), Port: 4}, "")
	if r := readResponse(t, third); r.StatusCode() != 503 || string(r.Body()) != "per_ip_limit\n" {
		t.Errorf("third connection from one /64: %d %q", r.StatusCode(), r.Body())
	}
	_ = third.Close()
	if r := g.do(other, "GET", "/healthz", nil, ""); r.Status != 200 {
		t.Errorf("another /64: %d", r.Status)
	}
}
