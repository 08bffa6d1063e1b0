package delivery

import (
	"crypto/tls"
	"net"
	"sync"
)

// TLS cuts one write into records of at most 16 KiB (smaller still while
// a connection is young) and hands each to the connection below with a
// write of its own: a batch of many hits would cost a system call per
// record. heldConn and recordBatcher put the records of one write back
// together, so a batch is one system call below TLS as well as above.

// heldConn is the connection below TLS. While held, what TLS writes is
// collected in buf instead of sent.
type heldConn struct {
	net.Conn
	mu   sync.Mutex // orders direct writes against the held bytes
	held bool
	buf  []byte
}

func (c *heldConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// recordBatcher is a TLS connection over a heldConn: each Write is one
// write of the connection below. TLS writes of its own (an alert, a key
// update) made meanwhile are sent in order with the held records.
type recordBatcher struct {
	*tls.Conn
	below *heldConn
	wmu   sync.Mutex // one batched write at a time
}

func (c *recordBatcher) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b := c.below
	b.mu.Lock()
	b.held = true
	b.mu.Unlock()
	n, err := c.Conn.Write(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held = false
	if len(b.buf) > 0 {
		_, werr := b.Conn.Write(b.buf)
		b.buf = b.buf[:0]
		if err == nil && werr != nil {
			n, err = 0, werr
		}
	}
	return n, err
}
