package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection and the server
// end's readAhead.
func tcpPair(t *testing.T) (client, server net.Conn, ra *readAhead) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close(); _ = server.Close() })
	rc, err := server.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return client, server, &readAhead{rc: rc}
}

// A one-byte read (fasthttp's wait with reduce_memory) reads all that
// arrived; the rest is handed out from the buffer, which is released
// once taken.
func TestReadAheadHandsOutWhatOneReadGot(t *testing.T) {
	client, _, ra := tcpPair(t)
	if _, err := client.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	one := make([]byte, 1)
	if n, err := ra.read(one); n != 1 || err != nil || one[0] != 'G' {
		t.Fatalf("first byte: %d %v %q", n, err, one)
	}
	if ra.buf == nil {
		t.Fatal("the rest of the request is not buffered")
	}
	rest := make([]byte, 100)
	n, err := ra.read(rest)
	if err != nil || string(rest[:n]) != "ET / HTTP/1.1\r\n\r\n" {
		t.Fatalf("rest: %q %v", rest[:n], err)
	}
	if ra.buf != nil {
		t.Error("buffer still held after everything was taken")
	}
}

// A read that waits holds no buffer, and wakes when data comes; a large
// destination is read into directly; EOF and deadlines come through.
func TestReadAheadWaitsEOFAndDeadline(t *testing.T) {
	client, server, ra := tcpPair(t)
	got := make(chan string, 1)
	go func() {
		p := make([]byte, 64)
		n, err := ra.read(p)
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(p[:n])
	}()
	// Give the reader time to park in the poller; the test holds either way
	// (data that comes first is simply read at once).
	time.Sleep(10 * time.Millisecond)
	if _, err := client.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "late" {
		t.Fatalf("read %q, want late", s)
	}
	big := bytes.Repeat([]byte("x"), 3*readAheadSize)
	go func() { _, _ = client.Write(big) }()
	dst := make([]byte, 4*readAheadSize)
	total := 0
	for total < len(big) {
		n, err := ra.read(dst[total:])
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	if ra.buf != nil {
		t.Error("direct reads held a buffer")
	}
	_ = server.SetReadDeadline(time.Now().Add(-time.Second))
	var ne net.Error
	if _, err := ra.read(make([]byte, 8)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("past deadline: %v, want a timeout", err)
	}
	_ = server.SetReadDeadline(time.Time{})
	_ = client.Close()
	if _, err := ra.read(make([]byte, 8)); !errors.Is(err, io.EOF) {
		t.Fatalf("after close: %v, want EOF", err)
	}
}

// syscr is this process's count of read(2)-like system calls so far.
func syscr(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Fatalf("read /proc/self/io: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("syscr: ")); ok {
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no syscr in /proc/self/io")
	return 0
}

// As fasthttp reads with reduce_memory (a byte, then the rest into its
// buffer), a request that arrives while the reader waits costs two
// read(2) calls through readAhead (the one that finds nothing, the one
// that reads it all), against three on the plain connection.
func TestReadAheadReadsPerRequest(t *testing.T) {
	const requests = 50
	req := []byte("GET /g/collect?v=2&tid=G-1 HTTP/1.1\r\nHost: x\r\n\r\n")
	count := func(read func([]byte) (int, error), client net.Conn) int64 {
		ack := make(chan struct{})
		done := make(chan int64, 1)
		go func() {
			one, rest := make([]byte, 1), make([]byte, 4096)
			before := syscr(t)
			for range requests {
				if _, err := read(one); err != nil {
					t.Error(err)
					break
				}
				if _, err := read(rest); err != nil {
					t.Error(err)
					break
				}
				ack <- struct{}{}
			}
			done <- syscr(t) - before
		}()
		for range requests {
			time.Sleep(200 * time.Microsecond) // the reader is waiting when the request comes
			if _, err := client.Write(req); err != nil {
				t.Fatal(err)
			}
			<-ack
		}
		return <-done
	}
	client, _, ra := tcpPair(t)
	viaReadAhead := count(ra.read, client)
	client2, server2, _ := tcpPair(t)
	plain := count(server2.Read, client2)
	t.Logf("%d requests: %d reads through readAhead, %d plain", requests, viaReadAhead, plain)
	// The counts are the process's (the runtime's own reads add a little
	// to both): readAhead must save most of a read per request.
	if viaReadAhead+requests/2 > plain {
		t.Errorf("%d reads for %d requests through readAhead, %d plain: want about one read per request fewer", viaReadAhead, requests, plain)
	}
}
