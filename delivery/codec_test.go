package delivery

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestPayloadRoundTrip(t *testing.T) {
	var out fasthttp.Request
	out.Header.SetMethod("POST")
	out.Header.Set("User-Agent", "Mozilla/5.0")
	out.Header.Set("Cookie", "_ga=GA1.1.1.2")
	out.Header.Set("X-Forwarded-For", "198.51.100.0")
	out.SetBodyString("en=page_view\r\nen=scroll")
	b := appendPayload(nil, 3, &out, []byte("/g/collect"), []byte("v=2&tid=G-1"))
	var req fasthttp.Request
	route, err := decodePayload(&req, b, "https", "region1.google-analytics.com")
	if err != nil || route != 3 {
		t.Fatalf("decodePayload: %d, %v", route, err)
	}
	want := "POST https://region1.google-analytics.com/g/collect?v=2&tid=G-1 ua=Mozilla/5.0 xff=198.51.100.0 cookie=_ga=GA1.1.1.2 body=en=page_view\r\nen=scroll"
	got := string(req.Header.Method()) + " " + string(req.URI().FullURI()) + " ua=" + string(req.Header.UserAgent()) +
		" xff=" + string(req.Header.Peek("X-Forwarded-For")) + " cookie=" + string(req.Header.Peek("Cookie")) + " body=" + string(req.Body())
	if got != want {
		t.Errorf("decoded\n %q\nwant\n %q", got, want)
	}
}

// FuzzDecodePayload: a damaged spool payload is refused, never a panic,
// and a payload that decodes encodes back to the same request.
func FuzzDecodePayload(f *testing.F) {
	var out fasthttp.Request
	out.Header.SetMethod("GET")
	out.Header.Set("User-Agent", "x")
	f.Add(appendPayload(nil, 0, &out, []byte("/g/collect"), []byte("v=2")))
	f.Add([]byte{1, 0, 0, 3, 'G', 'E', 'T'})
	f.Fuzz(func(t *testing.T, b []byte) {
		var req fasthttp.Request
		route, err := decodePayload(&req, b, "https", "example.com")
		if err != nil {
			return
		}
		again := appendPayload(nil, route, &req, req.URI().PathOriginal(), req.URI().QueryString())
		var req2 fasthttp.Request
		if _, err := decodePayload(&req2, again, "https", "example.com"); err != nil {
			t.Fatalf("re-encoded payload does not decode: %v", err)
		}
		if !bytes.Equal(req.URI().FullURI(), req2.URI().FullURI()) || !bytes.Equal(req.Body(), req2.Body()) {
			t.Fatalf("round trip changed the request: %q vs %q", req.URI().FullURI(), req2.URI().FullURI())
		}
	})
}

// appendPayload appends the version-1 encoding of the upstream request
// out, bound for route, to dst, as releases before batched delivery wrote
// it (the tests make old spools with it). path and query are the request's path and query
// string as prepare set them.
func appendPayload(dst []byte, route int, out *fasthttp.Request, path, query []byte) []byte {
	dst = append(dst, payloadVersion)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(route))
	m := out.Header.Method()
	dst = append(append(dst, byte(len(m))), m...)
	dst = appendBytes32(dst, path)
	dst = appendBytes32(dst, query)
	countAt := len(dst)
	dst = append(dst, 0, 0)
	n := 0
	for k, v := range out.Header.All() {
		if string(k) == fasthttp.HeaderHost || string(k) == fasthttp.HeaderContentLength {
			continue
		}
		dst = binary.LittleEndian.AppendUint16(dst, uint16(len(k)))
		dst = append(dst, k...)
		dst = appendBytes32(dst, v)
		n++
	}
	binary.LittleEndian.PutUint16(dst[countAt:], uint16(n))
	return appendBytes32(dst, out.Body())
}

func appendBytes32(dst, b []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}
