package delivery

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2conn is one upstream connection that carries queued hits as streams
// of HTTP/2 (RFC 9113): its lane's sender writes the HEADERS (and DATA)
// frames of a batch of hits with one write, and its reader settles each
// hit with the answer on its own stream. A hit is settled only by its own
// answer; a stream the upstream resets or refuses, a stream above a
// GOAWAY's last stream, and every stream still open when the connection
// fails are handed back for a retry.
//
// Locking: wmu orders the building and writing of the sender's frames
// (the HPACK encoder's state must match the order of the header blocks on
// the wire, and stream ids must rise); mu guards the streams and the
// peer's settings. wmu is taken before mu.
type h2conn struct {
	nc      net.Conn
	sink    pconnSink
	host    string // :authority when a hit has no Host header
	timeout time.Duration
	maxBody int // a response body longer than this resets its stream; 0: no limit

	// Reader side, used by the reader goroutine only (and by newH2Conn
	// before it starts).
	br   *bufio.Reader
	rfr  *http2.Framer // reads; writes control frames into ctl
	ctl  frameBuf      // control frames to write before the next blocking read
	resp fasthttp.Response
	recv int // response bytes taken since the last connection WINDOW_UPDATE

	wmu  sync.Mutex
	wfr  *http2.Framer // writes into wb
	wb   frameBuf
	henc *hpack.Encoder
	hbuf bytes.Buffer // one header block

	mu         sync.Mutex
	streams    []*h2stream // open, by rising id
	nextID     uint32
	maxStreams int   // the peer's SETTINGS_MAX_CONCURRENT_STREAMS
	maxFrame   int   // the peer's SETTINGS_MAX_FRAME_SIZE
	initWin    int64 // the peer's SETTINGS_INITIAL_WINDOW_SIZE
	connWin    int64 // what the peer lets us send on the connection
	bodies     bool  // a stream has request body left to send
	goaway     bool  // the peer takes no new streams
	dead       bool
	room       chan struct{} // a stream closed or the connection failed (cap 1)
	done       chan struct{} // closed when the reader has ended
}

// h2stream is one hit in flight.
type h2stream struct {
	id   uint32
	q    *queued // nil once answered
	sent int64   // when its HEADERS were written, Unix nanoseconds
	body []byte  // request body not yet sent (part of q.wire)
	win  int64   // what the peer lets us send on the stream
	recv int     // response body bytes since the last stream WINDOW_UPDATE
	got  int     // response body bytes in all
}

// What this side lets the peer send: a stream may bring a response body
// of up to h2StreamWindow before the reader gives more (it gives more as
// it discards), the connection h2ConnWindow.
const (
	h2StreamWindow   = 1 << 20
	h2ConnWindow     = 1 << 24
	h2MaxHeaderList  = 1 << 20
	h2DefaultStreams = 1000 // when the peer sets no limit
	h2MaxWindow      = 1<<31 - 1
	h2MaxStreamID    = 1<<31 - 1
)

var (
	errH2Preface   = errors.New("delivery: upstream did not start HTTP/2 with SETTINGS")
	errH2Push      = errors.New("delivery: upstream pushed a stream it was told not to")
	errH2Window    = errors.New("delivery: upstream overflowed a flow-control window")
	errH2GoAway    = errors.New("delivery: upstream stopped taking streams (GOAWAY)")
	errH2BodySize  = errors.New("delivery: upstream answer body too large")
	errH2Malformed = errors.New("delivery: queued request text malformed")
	errH2Status    = errors.New("delivery: upstream answered without a final status")
)

// frameBuf collects frames for one write.
type frameBuf struct{ b []byte }

func (w *frameBuf) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// newH2Conn starts an HTTP/2 connection over tc, whose TLS handshake
// negotiated h2: it writes the client preface with its settings, waits for
// the peer's SETTINGS (so that its stream limit is known before the first
// batch) and starts the reader.
func newH2Conn(tc net.Conn, host string, timeout time.Duration, maxBody int, sink pconnSink) (upConn, error) {
	c := &h2conn{nc: tc, sink: sink, host: host, timeout: timeout, maxBody: maxBody,
		nextID: 1, maxStreams: h2DefaultStreams, maxFrame: 16384, initWin: 65535, connWin: 65535,
		room: make(chan struct{}, 1), done: make(chan struct{})}
	c.br = bufio.NewReaderSize(tc, 16<<10)
	c.rfr = http2.NewFramer(&c.ctl, c.br)
	c.rfr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.rfr.MaxHeaderListSize = h2MaxHeaderList
	c.rfr.SetReuseFrames()
	c.wfr = http2.NewFramer(&c.wb, nil)
	c.henc = hpack.NewEncoder(&c.hbuf)

	c.wb.b = append(c.wb.b, http2.ClientPreface...)
	_ = c.wfr.WriteSettings(
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2StreamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: h2MaxHeaderList},
	)
	_ = c.wfr.WriteWindowUpdate(0, h2ConnWindow-65535)
	_ = tc.SetDeadline(time.Now().Add(timeout))
	c.sink.wrote(0)
	if _, err := tc.Write(c.wb.b); err != nil {
		_ = tc.Close()
		return nil, err
	}
	f, err := c.rfr.ReadFrame()
	if err != nil {
		_ = tc.Close()
		return nil, err
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		_ = tc.Close()
		return nil, errH2Preface
	}
	if err := c.settings(sf); err != nil {
		_ = tc.Close()
		return nil, err
	}
	_ = tc.SetDeadline(time.Time{})
	go c.read()
	return c, nil
}

func (c *h2conn) roomCh() <-chan struct{} { return c.room }

// pending is the number of open streams (written, and not yet ended by
// the peer's answer or a reset).
func (c *h2conn) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.streams)
}

// limit is the peer's limit on open streams.
func (c *h2conn) limit() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.maxStreams
}

// alive reports whether the connection takes new streams.
func (c *h2conn) alive() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.dead && !c.goaway
}

func (c *h2conn) oldest() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	oldest := int64(0)
	for _, s := range c.streams {
		if s.q != nil && (oldest == 0 || s.q.at < oldest) {
			oldest = s.q.at
		}
	}
	return oldest
}

// close ends the connection; the reader hands back what is unanswered.
func (c *h2conn) close() {
	_ = c.nc.Close()
	<-c.done
}

// send opens a stream per hit of batch and writes their frames with one
// write: HEADERS (and CONTINUATION) with the hit's header block, then its
// body as DATA as far as the flow-control windows allow; the reader writes
// the rest as the peer opens its windows. With errConnDead nothing was
// sent and batch is still the caller's. Otherwise the hits belong to the
// connection. The sender keeps pending()+len(batch) within limit(); should
// the peer lower its limit meanwhile, it refuses the excess streams and
// they come back for a retry. buf is not used.
func (c *h2conn) send(batch []*queued, buf []byte, now time.Time) ([]byte, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	if c.dead || c.goaway {
		c.mu.Unlock()
		return buf, errConnDead
	}
	if len(c.streams) == 0 {
		_ = c.nc.SetReadDeadline(now.Add(c.timeout))
	}
	c.wb.b = c.wb.b[:0]
	var bad []*queued
	for _, q := range batch {
		r, err := parseWire(q.wire)
		if err != nil {
			bad = append(bad, q)
			continue
		}
		if c.nextID > h2MaxStreamID {
			c.goaway = true // out of stream ids: the next batch dials anew
			bad = append(bad, q)
			continue
		}
		q.sent = now.UnixNano()
		s := &h2stream{id: c.nextID, q: q, sent: q.sent, win: c.initWin}
		c.nextID += 2
		c.streams = append(c.streams, s)
		c.writeHeaders(s, &r)
		if len(r.body) > 0 {
			s.body = r.body
			c.writeBody(s)
		}
	}
	c.mu.Unlock()
	if len(bad) > 0 {
		c.sink.broken(bad, errH2Malformed)
	}
	if len(c.wb.b) == 0 {
		return buf, nil
	}
	_ = c.nc.SetWriteDeadline(now.Add(c.timeout))
	c.sink.wrote(len(batch) - len(bad))
	if _, err := c.nc.Write(c.wb.b); err != nil {
		_ = c.nc.Close() // the reader fails and hands the hits back
		return buf, err
	}
	return buf, nil
}

// writeHeaders appends s's HEADERS (and CONTINUATION) frames to wb. wmu
// and mu are held.
func (c *h2conn) writeHeaders(s *h2stream, r *wireRequest) {
	c.hbuf.Reset()
	authority := r.authority
	if len(authority) == 0 {
		authority = []byte(c.host)
	}
	c.field(":method", r.method)
	c.field(":scheme", []byte("https"))
	c.field(":authority", authority)
	// Each hit's path differs (its query): indexed, it would push the
	// headers that do repeat out of the peer's table.
	_ = c.henc.WriteField(hpack.HeaderField{Name: ":path", Value: string(r.path), Sensitive: true})
	r.fields(func(name, value []byte) { c.field(string(name), value) })
	block := c.hbuf.Bytes()
	first := block[:min(len(block), c.maxFrame)]
	block = block[len(first):]
	_ = c.wfr.WriteHeaders(http2.HeadersFrameParam{StreamID: s.id, BlockFragment: first,
		EndStream: len(r.body) == 0, EndHeaders: len(block) == 0})
	for len(block) > 0 {
		frag := block[:min(len(block), c.maxFrame)]
		block = block[len(frag):]
		_ = c.wfr.WriteContinuation(s.id, len(block) == 0, frag)
	}
}

// field encodes one header field into hbuf.
func (c *h2conn) field(name string, value []byte) {
	_ = c.henc.WriteField(hpack.HeaderField{Name: name, Value: string(value)})
}

// writeBody appends as much of s's body as the windows allow to wb, as
// DATA frames, the last one ending the stream. wmu and mu are held.
func (c *h2conn) writeBody(s *h2stream) {
	for len(s.body) > 0 {
		n := int(min(int64(len(s.body)), int64(c.maxFrame), c.connWin, s.win))
		if n <= 0 {
			c.bodies = true
			return
		}
		_ = c.wfr.WriteData(s.id, n == len(s.body), s.body[:n])
		s.body = s.body[n:]
		c.connWin -= int64(n)
		s.win -= int64(n)
	}
	s.body = nil
}

// flush writes what the windows now allow of the request bodies
// still waiting, together with the reader's control frames, in one write.
// Called by the reader before it blocks.
func (c *h2conn) flush() error {
	c.mu.Lock()
	more := c.bodies && c.connWin > 0
	c.mu.Unlock()
	if len(c.ctl.b) == 0 && !more {
		return nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wb.b = append(c.wb.b[:0], c.ctl.b...)
	c.ctl.b = c.ctl.b[:0]
	if more {
		c.mu.Lock()
		c.bodies = false
		for _, s := range c.streams {
			if len(s.body) > 0 {
				c.writeBody(s)
			}
		}
		c.mu.Unlock()
	}
	if len(c.wb.b) == 0 {
		return nil
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.timeout))
	c.sink.wrote(0)
	_, err := c.nc.Write(c.wb.b)
	return err
}

// settings applies the peer's SETTINGS and queues their acknowledgement.
// The header table size is applied under wmu, so that no header block
// encoded for the old size follows the acknowledgement.
func (c *h2conn) settings(f *http2.SettingsFrame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingMaxConcurrentStreams:
			c.maxStreams = int(min(s.Val, 1<<20))
		case http2.SettingMaxFrameSize:
			c.maxFrame = int(s.Val)
		case http2.SettingHeaderTableSize:
			c.henc.SetMaxDynamicTableSizeLimit(s.Val)
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - c.initWin
			c.initWin = int64(s.Val)
			for _, st := range c.streams {
				st.win += delta
				if st.win > h2MaxWindow {
					return errH2Window
				}
			}
			if delta > 0 {
				c.bodies = true
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	_ = c.rfr.WriteSettingsAck()
	return nil
}

// read reads frames until the connection fails, or until it has no
// streams left after a GOAWAY.
func (c *h2conn) read() {
	defer close(c.done)
	for {
		if c.br.Buffered() == 0 {
			// About to block: write what waits, and let the oldest open
			// stream bound the wait.
			if err := c.flush(); err != nil {
				c.fail(err)
				return
			}
			c.mu.Lock()
			if len(c.streams) > 0 {
				_ = c.nc.SetReadDeadline(time.Unix(0, c.streams[0].sent).Add(c.timeout))
			} else {
				_ = c.nc.SetReadDeadline(time.Time{})
			}
			c.mu.Unlock()
		}
		f, err := c.rfr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) && se.StreamID != 0 {
				// One malformed answer: reset its stream, keep the others.
				_ = c.rfr.WriteRSTStream(se.StreamID, se.Code)
				c.end(se.StreamID, se)
				continue
			}
			c.fail(err)
			return
		}
		if err := c.frame(f); err != nil {
			c.fail(err)
			return
		}
		c.mu.Lock()
		over := c.goaway && len(c.streams) == 0
		if over {
			c.dead = true
		}
		c.mu.Unlock()
		if over {
			// Every stream the peer kept is answered: the connection is done.
			_ = c.flush()
			_ = c.nc.Close()
			c.signal()
			return
		}
	}
}

// frame handles one frame of the peer.
func (c *h2conn) frame(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if f.IsAck() {
			return nil
		}
		if err := c.settings(f); err != nil {
			return err
		}
		c.signal() // the stream limit may have grown
	case *http2.PingFrame:
		if !f.IsAck() {
			_ = c.rfr.WritePing(true, f.Data)
		}
	case *http2.WindowUpdateFrame:
		c.mu.Lock()
		defer c.mu.Unlock()
		if f.StreamID == 0 {
			c.connWin += int64(f.Increment)
			if c.connWin > h2MaxWindow {
				return errH2Window
			}
			c.bodies = true
			return nil
		}
		if s := c.stream(f.StreamID); s != nil {
			s.win += int64(f.Increment)
			if s.win > h2MaxWindow {
				return errH2Window
			}
			c.bodies = true
		}
	case *http2.MetaHeadersFrame:
		c.headers(f)
	case *http2.DataFrame:
		c.data(f)
	case *http2.RSTStreamFrame:
		c.end(f.StreamID, http2.StreamError{StreamID: f.StreamID, Code: f.ErrCode})
	case *http2.GoAwayFrame:
		c.goAway(f.LastStreamID)
	case *http2.PushPromiseFrame:
		return errH2Push
	}
	return nil
}

// stream finds an open stream by id. mu is held.
func (c *h2conn) stream(id uint32) *h2stream {
	i, ok := slices.BinarySearchFunc(c.streams, id, func(s *h2stream, id uint32) int { return int(s.id) - int(id) })
	if !ok {
		return nil
	}
	return c.streams[i]
}

// remove closes stream id; it returns the stream's hit when unanswered.
// mu is held.
func (c *h2conn) remove(id uint32) (*h2stream, *queued) {
	i, ok := slices.BinarySearchFunc(c.streams, id, func(s *h2stream, id uint32) int { return int(s.id) - int(id) })
	if !ok {
		return nil, nil
	}
	s := c.streams[i]
	c.streams = slices.Delete(c.streams, i, i+1)
	q := s.q
	s.q, s.body = nil, nil
	return s, q
}

// headers takes a response's header block: the first final one settles
// the stream's hit with its status and headers.
func (c *h2conn) headers(f *http2.MetaHeadersFrame) {
	c.mu.Lock()
	s := c.stream(f.StreamID)
	if s == nil {
		c.mu.Unlock()
		return // a stream already reset
	}
	q := s.q
	status, err := strconv.Atoi(f.PseudoValue("status"))
	if q != nil && err == nil && 100 <= status && status < 200 && !f.StreamEnded() {
		c.mu.Unlock()
		return // 1xx: the answer follows
	}
	s.q = nil
	c.mu.Unlock()
	if q != nil {
		if err != nil || status < 200 || status > 999 {
			// No status, or an interim answer ending the stream: not an
			// answer. The hit is sent again.
			_ = c.rfr.WriteRSTStream(f.StreamID, http2.ErrCodeProtocol)
			c.end(f.StreamID, nil)
			c.sink.broken([]*queued{q}, errH2Status)
			return
		}
		c.resp.Reset()
		c.resp.SetStatusCode(status)
		for _, hf := range f.RegularFields() {
			c.resp.Header.Add(hf.Name, hf.Value)
		}
		c.sink.answered(q, &c.resp, time.Since(time.Unix(0, s.sent)))
	}
	if f.StreamEnded() {
		c.closed(f.StreamID)
	}
}

// data discards a response body, giving the peer room for more.
func (c *h2conn) data(f *http2.DataFrame) {
	n := int(f.Header().Length)
	c.recv += n
	if c.recv >= h2ConnWindow/2 {
		_ = c.rfr.WriteWindowUpdate(0, uint32(c.recv))
		c.recv = 0
	}
	c.mu.Lock()
	s := c.stream(f.StreamID)
	if s == nil {
		c.mu.Unlock()
		return
	}
	unanswered := s.q != nil
	s.got += len(f.Data())
	s.recv += n
	tooLong := c.maxBody > 0 && s.got > c.maxBody
	if !f.StreamEnded() && !tooLong && s.recv >= h2StreamWindow/2 {
		_ = c.rfr.WriteWindowUpdate(s.id, uint32(s.recv))
		s.recv = 0
	}
	c.mu.Unlock()
	switch {
	case unanswered:
		// DATA before HEADERS: not an answer.
		_ = c.rfr.WriteRSTStream(f.StreamID, http2.ErrCodeProtocol)
		c.end(f.StreamID, http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol})
	case tooLong:
		_ = c.rfr.WriteRSTStream(f.StreamID, http2.ErrCodeCancel)
		c.end(f.StreamID, errH2BodySize)
	case f.StreamEnded():
		c.closed(f.StreamID)
	}
}

// closed ends a stream whose answer is complete. A request body not yet
// sent in full is cancelled.
func (c *h2conn) closed(id uint32) {
	c.mu.Lock()
	s, _ := c.remove(id)
	c.mu.Unlock()
	if s != nil && len(s.body) > 0 {
		_ = c.rfr.WriteRSTStream(id, http2.ErrCodeCancel)
	}
	c.signal()
}

// end closes stream id for err: its hit, when unanswered, is handed back.
func (c *h2conn) end(id uint32, err error) {
	c.mu.Lock()
	_, q := c.remove(id)
	c.mu.Unlock()
	if q != nil {
		c.sink.broken([]*queued{q}, err)
	}
	c.signal()
}

// goAway takes no new streams; those above last were not handled by the
// peer and are handed back.
func (c *h2conn) goAway(last uint32) {
	c.mu.Lock()
	c.goaway = true
	var qs []*queued
	kept := c.streams[:0]
	for _, s := range c.streams {
		if s.id <= last {
			kept = append(kept, s)
			continue
		}
		if s.q != nil {
			qs = append(qs, s.q)
		}
		s.q, s.body = nil, nil
	}
	clear(c.streams[len(kept):])
	c.streams = kept
	c.mu.Unlock()
	if len(qs) > 0 {
		c.sink.broken(qs, errH2GoAway)
	}
	c.signal()
}

// signal tells the sender that room may have appeared.
func (c *h2conn) signal() {
	select {
	case c.room <- struct{}{}:
	default:
	}
}

// fail closes the connection and hands its unanswered hits back.
func (c *h2conn) fail(err error) {
	_ = c.nc.Close()
	c.mu.Lock()
	c.dead = true
	var qs []*queued
	for _, s := range c.streams {
		if s.q != nil {
			qs = append(qs, s.q)
		}
		s.q, s.body = nil, nil
	}
	c.streams = nil
	c.mu.Unlock()
	if len(qs) > 0 {
		c.sink.broken(qs, err)
	}
	c.signal()
}

// wireRequest is a queued hit's HTTP/1.1 request text taken apart for
// HTTP/2. Its slices refer to the request text.
type wireRequest struct {
	method, path, authority []byte
	head                    []byte // the header lines, each ending in CRLF
	body                    []byte
}

// parseWire splits the request text wire (as appendWire writes it) into
// what an HTTP/2 request carries. It fails only when wire has no request
// line or no blank line ending the headers. The result refers to wire.
func parseWire(wire []byte) (wireRequest, error) {
	var r wireRequest
	end := bytes.Index(wire, []byte("\r\n\r\n"))
	if end < 0 {
		return r, errH2Malformed
	}
	r.body = wire[end+4:]
	head := wire[:end+2]
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	method, target, ok := bytes.Cut(line, []byte(" "))
	if !ok || len(method) == 0 || !httpguts.ValidHeaderFieldName(string(method)) {
		return r, errH2Malformed
	}
	target, _, _ = bytes.Cut(target, []byte(" "))
	if len(target) == 0 || target[0] != '/' || !validFieldValue(target) {
		return r, errH2Malformed
	}
	r.method, r.path, r.head = method, target, rest
	for line := range bytes.SplitSeq(rest, []byte("\r\n")) {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(name, []byte("host")) {
			r.authority = bytes.TrimSpace(value)
			if !validFieldValue(r.authority) {
				r.authority = nil
			}
		}
	}
	return r, nil
}

// h2Dropped are the connection-specific headers HTTP/2 forbids (RFC 9113
// §8.2.2) and Host, which becomes :authority.
var h2Dropped = []string{"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host"}

// fields calls f with each header of r that an HTTP/2 request carries,
// its name in lower case (in a buffer valid during the call). A line
// that is not a valid header is left out: less leaves, never more.
func (r *wireRequest) fields(f func(name, value []byte)) {
	var lower [128]byte
	for line := range bytes.SplitSeq(r.head, []byte("\r\n")) {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 || len(name) > len(lower) {
			continue
		}
		for i, b := range name {
			if 'A' <= b && b <= 'Z' {
				b += 'a' - 'A'
			}
			lower[i] = b
		}
		name = lower[:len(name)]
		if !httpguts.ValidHeaderFieldName(string(name)) || slices.Contains(h2Dropped, string(name)) {
			continue
		}
		value = bytes.Trim(value, " \t")
		if !validFieldValue(value) {
			continue
		}
		if string(name) == "te" && !bytes.EqualFold(value, []byte("trailers")) {
			continue
		}
		f(name, value)
	}
}

// validFieldValue reports whether v may be sent as a field value.
func validFieldValue(v []byte) bool {
	for _, b := range v {
		if b < ' ' && b != '\t' || b == 0x7f {
			return false
		}
	}
	return true
}
