package delivery

import (
	"encoding/binary"
	"errors"

	"github.com/valyala/fasthttp"
)

// The payload of a queued hit (in memory and in the spool) is the
// rewritten upstream request, never the browser's: what the decision
// removed is not there to store. Since batched delivery it is written as
// version 2 (wire.go: the request as it goes on the wire); version 1,
// below, was written by earlier releases and is still read from their
// spools (wireOf converts it), never written.
//
//	version  u8 (1)
//	route    u16       the caller's tag (the proxy's route index)
//	method   u8 length, bytes
//	path     u32 length, bytes (sent as is)
//	query    u32 length, bytes
//	headers  u16 count, then per header: u16 name length, name, u32 value length, value
//	body     u32 length, bytes
//
// Host and Content-Length are not stored: the lane's upstream and the body
// give them.
const payloadVersion = 1

var errPayload = errors.New("delivery: malformed queued request")

// payloadReader walks a payload without allocating.
type payloadReader struct {
	b   []byte
	err bool
}

func (r *payloadReader) n(size int) []byte {
	if r.err || len(r.b) < size {
		r.err = true
		return nil
	}
	v := r.b[:size]
	r.b = r.b[size:]
	return v
}

func (r *payloadReader) u8() int {
	if v := r.n(1); v != nil {
		return int(v[0])
	}
	return 0
}

func (r *payloadReader) u16() int {
	if v := r.n(2); v != nil {
		return int(binary.LittleEndian.Uint16(v))
	}
	return 0
}

func (r *payloadReader) bytes32() []byte {
	v := r.n(4)
	if v == nil {
		return nil
	}
	return r.n(int(binary.LittleEndian.Uint32(v)))
}

// decodePayload resets req to the request encoded in b, addressed to
// scheme://host. req copies what it keeps; b may be reused afterwards.
func decodePayload(req *fasthttp.Request, b []byte, scheme, host string) (route int, err error) {
	r := payloadReader{b: b}
	if r.u8() != payloadVersion {
		return 0, errPayload
	}
	route = r.u16()
	method := r.n(r.u8())
	path := r.bytes32()
	query := r.bytes32()
	if r.err || len(method) == 0 || len(path) == 0 || path[0] != '/' {
		return 0, errPayload
	}
	req.Reset()
	req.Header.SetMethodBytes(method)
	uri := req.URI()
	uri.DisablePathNormalizing = true
	uri.SetScheme(scheme)
	uri.SetHost(host)
	uri.SetPathBytes(path)
	uri.SetQueryStringBytes(query)
	for n := r.u16(); n > 0 && !r.err; n-- {
		k := r.n(r.u16())
		v := r.bytes32()
		if r.err || len(k) == 0 {
			break
		}
		req.Header.SetBytesKV(k, v)
	}
	body := r.bytes32()
	if r.err || len(r.b) != 0 {
		req.Reset()
		return 0, errPayload
	}
	if len(body) > 0 {
		req.SetBody(body)
	}
	return route, nil
}
