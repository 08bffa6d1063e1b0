package delivery

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's housekeeping goroutines sleep out their period after
		// Shutdown and CloseIdleConnections, then exit.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	)
}

// sent is one request the fake upstream received.
type sent struct{ host, uri string }

// fakeUpstream serves on an in-memory listener: every request is sent on
// got, then answered by respond (204 when nil). It returns the client.
func fakeUpstream(t *testing.T, respond func(*fasthttp.RequestCtx)) (*fasthttp.HostClient, chan sent) {
	t.Helper()
	ln := fasthttputil.NewInmemoryListener()
	got := make(chan sent, 16)
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		got <- sent{string(ctx.Host()), string(ctx.RequestURI())}
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		if respond != nil {
			respond(ctx)
		}
	}}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	hc := &fasthttp.HostClient{Addr: "upstream:80", Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	t.Cleanup(func() {
		hc.CloseIdleConnections()
		_ = srv.Shutdown()
		<-done
	})
	return hc, got
}

// observed is one call of Options.Observe.
type observed struct {
	tag, status int
	err         error
}

func startMemory(t *testing.T, queueSize int, obs chan observed) (*Delivery, *metrics.Set) {
	t.Helper()
	set := metrics.NewSet()
	d, err := Start(Options{MaxAge: time.Minute, QueueSize: queueSize, QueueBytes: 1 << 20, Workers: 1, Timeout: 5 * time.Second,
		Metrics: NewMetrics(set, []string{"a", "b"}), LabelOf: func(tag int) int { return tag },
		Observe: func(tag int, _ time.Duration, status int, err error) { obs <- observed{tag, status, err} }})
	if err != nil {
		t.Fatal(err)
	}
	return d, set
}

func hit(uri string) *fasthttp.Request {
	req := new(fasthttp.Request)
	req.Header.SetMethod("GET")
	req.Header.Set("User-Agent", "test")
	req.SetRequestURI(uri)
	return req
}

// TestLaneDelivers: a hit accepted on a lane reaches the lane's upstream
// with the lane's Host, Observe sees its tag, and the delivered counter of
// the tag's label counts it. After Shutdown nothing is taken.
func TestLaneDelivers(t *testing.T) {
	hc, got := fakeUpstream(t, nil)
	obs := make(chan observed, 4)
	d, set := startMemory(t, 4, obs)
	l, err := d.Lane(Upstream{Scheme: "http", Host: "collect.example", Client: hc})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Accept(1, hit("/x"), []byte("/g/collect"), []byte("v=2&en=a"), time.Now()); err != nil {
		t.Fatalf("Accept: %v", err)
	}
	if s := <-got; s.host != "collect.example" || s.uri != "/g/collect?v=2&en=a" {
		t.Errorf("upstream got %+v", s)
	}
	if o := <-obs; o.tag != 1 || o.status != fasthttp.StatusNoContent || o.err != nil {
		t.Errorf("Observe got %+v", o)
	}
	d.Shutdown(time.Minute) // returns once idle: the hit is counted by then
	if n := set.GetOrCreateCounter(`consentgate_delivery_delivered_total{family="b"}`).Get(); n != 1 {
		t.Errorf("delivered{family=b} = %d, want 1", n)
	}
	if n := set.GetOrCreateCounter(`consentgate_delivery_accepted_total{family="b"}`).Get(); n != 1 {
		t.Errorf("accepted{family=b} = %d, want 1", n)
	}
	if err := l.Accept(1, hit("/x"), []byte("/g/collect"), nil, time.Now()); !errors.Is(err, ErrClosed) {
		t.Errorf("Accept after Shutdown: %v, want ErrClosed", err)
	}
	if _, err := d.Lane(Upstream{Scheme: "http", Host: "other.example", Client: hc}); !errors.Is(err, ErrClosed) {
		t.Errorf("Lane after Shutdown: %v, want ErrClosed", err)
	}
}

// TestLaneQueueFull: without a spool, a hit that finds the memory queue
// full is refused with ErrQueueFull; the ones taken are all delivered.
func TestLaneQueueFull(t *testing.T) {
	release := make(chan struct{})
	hc, got := fakeUpstream(t, func(*fasthttp.RequestCtx) { <-release })
	obs := make(chan observed, 4)
	d, _ := startMemory(t, 1, obs)
	l, err := d.Lane(Upstream{Scheme: "http", Host: "collect.example", Client: hc})
	if err != nil {
		t.Fatal(err)
	}
	accept := func(q string) error { return l.Accept(0, hit("/x"), []byte("/g/collect"), []byte(q), time.Now()) }
	if err := accept("n=1"); err != nil {
		t.Fatal(err)
	}
	<-got // the one worker holds n=1 at the upstream
	if err := accept("n=2"); err != nil {
		t.Fatalf("second hit (queued): %v", err)
	}
	if err := accept("n=3"); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third hit: %v, want ErrQueueFull", err)
	}
	close(release)
	if s := <-got; s.uri != "/g/collect?n=2" {
		t.Errorf("second delivery %+v, want n=2", s)
	}
	d.Shutdown(time.Minute)
	select {
	case s := <-got:
		t.Errorf("refused hit delivered: %+v", s)
	default:
	}
}
