package proxy

import (
	"errors"
	"io"
	"sync"
	"syscall"
)

// readAhead saves the browser side one or two system calls per request.
//
// With limits.reduce_memory fasthttp releases a connection's read buffer
// while it waits for the next request and waits by reading one byte, then
// reads the rest: three read(2) calls per request on a keep-alive
// connection (the one that returns EAGAIN before the wait, the byte, the
// rest). Without it, two (the EAGAIN, the request), but 16 KiB held per idle
// connection. readAhead gives both: it waits for the socket to be readable
// without reading (the runtime's poller, through syscall.RawConn: no
// system call while nothing has arrived), then reads what arrived with
// one read(2) into a pooled buffer, which it hands out to fasthttp's reads
// and releases as soon as they have taken it all. So a request costs one
// read, and an idle connection holds no buffer.
//
// It skips the read that would return EAGAIN only when the last read did
// not fill its buffer (then the socket was empty, and new data raises a
// new edge in the poller); a full last read, and a new connection, are
// read at once. A spurious wake-up costs one EAGAIN read, as before.
type readAhead struct {
	rc    syscall.RawConn // nil: plain reads
	buf   *[]byte         // pooled; held only while it has unread bytes
	r, w  int
	empty bool // the last read found the socket drained
}

// readAheadSize is the read buffer: a whole hit's headers in one read
// (larger requests take more reads, as they would anyway).
const readAheadSize = 8 << 10

var readAheadPool = sync.Pool{New: func() any { b := make([]byte, readAheadSize); return &b }}

// read fills p from what is buffered, or from the socket with one read.
func (ra *readAhead) read(p []byte) (int, error) {
	if ra.buf != nil {
		n := copy(p, (*ra.buf)[ra.r:ra.w])
		ra.r += n
		if ra.r == ra.w {
			readAheadPool.Put(ra.buf)
			ra.buf = nil
		}
		return n, nil
	}
	if len(p) == 0 {
		return 0, nil
	}
	// Read straight into p when it is as large as our buffer; otherwise
	// into a pooled buffer, taken only once data is there.
	direct := len(p) >= readAheadSize
	var (
		n, size int
		rerr    error
		b       *[]byte
	)
	wait := ra.empty
	err := ra.rc.Read(func(fd uintptr) bool {
		if wait {
			wait = false
			return false // wait for readability first: nothing to read yet
		}
		dst := p
		if !direct {
			if b == nil {
				b = readAheadPool.Get().(*[]byte)
			}
			dst = *b
		}
		size = len(dst)
		for {
			n, rerr = syscall.Read(int(fd), dst)
			if !errors.Is(rerr, syscall.EINTR) {
				break
			}
		}
		if errors.Is(rerr, syscall.EAGAIN) {
			return false // woken for nothing: wait again
		}
		return true
	})
	if err == nil {
		err = rerr
	}
	if n < 0 {
		n = 0
	}
	ra.empty = err == nil && n > 0 && n < size
	if err == nil && n == 0 {
		err = io.EOF
	}
	if direct || n == 0 {
		if b != nil {
			readAheadPool.Put(b)
		}
		return n, err
	}
	m := copy(p, (*b)[:n])
	if m < n {
		ra.buf, ra.r, ra.w = b, m, n
	} else {
		readAheadPool.Put(b)
	}
	return m, err
}
