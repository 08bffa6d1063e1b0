package proxy

import (
	"errors"
	"io"
	"sync"
	"syscall"
)

// readAhead saves the browser side a system call per request without
// holding a buffer on idle connections.
//
// With limits.reduce_memory fasthttp releases a connection's read buffer
// while it waits for the next request and waits by reading one byte, then
// reads the rest: three read(2) calls per request on a keep-alive
// connection (the one that returns EAGAIN before the wait, the byte, the
// rest). Without it, two (the EAGAIN, the request), but 16 KiB held per
// idle connection. readAhead gives both: it reads with syscall.RawConn
// into a pooled buffer taken only for the read itself (given back when the
// read finds nothing, before the wait), hands what it read to fasthttp's
// reads, and releases the buffer as soon as they have taken it all.
//
// It cannot skip the read that returns EAGAIN: the runtime clears a
// pending readiness before the first attempt (pollReset), so waiting
// without reading first could miss a request that arrived already.
type readAhead struct {
	rc   syscall.RawConn // nil: plain reads
	buf  *[]byte         // pooled; held only while it has unread bytes
	r, w int
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
		n    int
		rerr error
		b    *[]byte
	)
	err := ra.rc.Read(func(fd uintptr) bool {
		dst := p
		if !direct {
			if b == nil {
				b = readAheadPool.Get().(*[]byte)
			}
			dst = *b
		}
		for {
			n, rerr = syscall.Read(int(fd), dst)
			if !errors.Is(rerr, syscall.EINTR) {
				break
			}
		}
		if errors.Is(rerr, syscall.EAGAIN) {
			if b != nil {
				readAheadPool.Put(b) // no buffer held while waiting
				b = nil
			}
			return false
		}
		return true
	})
	if err == nil {
		err = rerr
	}
	if n < 0 {
		n = 0
	}
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
