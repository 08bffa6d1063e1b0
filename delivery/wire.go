package delivery

import (
	"bytes"
	"encoding/binary"
	"strconv"

	"github.com/valyala/fasthttp"
)

// A version-2 payload is the queued hit as the bytes that go on the wire:
//
//	version  u8 (2)
//	tag      u16       opaque to delivery (the proxy's route index)
//	request  HTTP/1.1 request text: request line, Host, the headers,
//	         Content-Length when there is a body, the body
//
// It is built once, when the hit is accepted, and written to the spool and
// to the upstream connection as it is: delivery copies no header and parses
// nothing per hit. Version-1 payloads (left in a spool by an older release)
// are still read: wireOf converts them.
const payloadWire = 2

// payloadHead is the size of a version-2 payload's head.
const payloadHead = 3

// appendWire appends the version-2 payload of the upstream request out,
// tagged tag and addressed to host, to dst. path and query are the
// request's path and query string as prepare set them. Host and
// Content-Length headers of out are replaced by host and the body's length.
func appendWire(dst []byte, tag int, out *fasthttp.Request, host string, path, query []byte) []byte {
	dst = append(dst, payloadWire)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(tag))
	m := out.Header.Method()
	dst = append(dst, m...)
	dst = append(dst, ' ')
	dst = append(dst, path...)
	if len(query) > 0 {
		dst = append(dst, '?')
		dst = append(dst, query...)
	}
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, host...)
	dst = append(dst, "\r\n"...)
	for k, v := range out.Header.All() {
		if string(k) == fasthttp.HeaderHost || string(k) == fasthttp.HeaderContentLength {
			continue
		}
		dst = append(dst, k...)
		dst = append(dst, ": "...)
		dst = append(dst, v...)
		dst = append(dst, "\r\n"...)
	}
	body := out.Body()
	if len(body) > 0 || !(string(m) == fasthttp.MethodGet || string(m) == fasthttp.MethodHead) {
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, int64(len(body)), 10)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "\r\n"...)
	return append(dst, body...)
}

// wireOf returns the tag and request bytes of payload b. A version-2
// payload's bytes are a subslice of b; a version-1 payload is decoded into
// req and written into buf, which is returned grown (the caller keeps it
// for the next call). b is not modified.
func wireOf(b []byte, host string, req *fasthttp.Request, buf []byte) (tag int, wire, grown []byte, err error) {
	if len(b) >= payloadHead && b[0] == payloadWire {
		tag = int(binary.LittleEndian.Uint16(b[1:]))
		wire = b[payloadHead:]
		if !bytes.HasPrefix(wire[bytes.IndexByte(wire, ' ')+1:], []byte("/")) || !bytes.Contains(wire, []byte("\r\n\r\n")) {
			return 0, nil, buf, errPayload
		}
		return tag, wire, buf, nil
	}
	tag, err = decodePayload(req, b, "http", host)
	if err != nil {
		return 0, nil, buf, err
	}
	uri := req.URI()
	buf = appendWire(buf[:0], tag, req, host, uri.PathOriginal(), uri.QueryString())
	return tag, buf[payloadHead:], buf, nil
}
