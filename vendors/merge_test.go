package vendors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/consentgate/consentgate/consentmode"
	"github.com/consentgate/consentgate/vendors/vendortest"
)

// wireSink keeps each call as the HTTP/1.1 request a delivery lane
// queues (delivery's appendWire, in short).
type wireSink struct{ wires [][]byte }

func (s *wireSink) Accept(_ int, out *fasthttp.Request, path, _ []byte, _ time.Time) error {
	w := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: api.example\r\n", path)
	for k, v := range out.Header.All() {
		if string(k) != fasthttp.HeaderContentLength && string(k) != fasthttp.HeaderHost {
			w = fmt.Appendf(w, "%s: %s\r\n", k, v)
		}
	}
	w = fmt.Appendf(w, "Content-Length: %d\r\n\r\n", len(out.Body()))
	s.wires = append(s.wires, append(w, out.Body()...))
	return nil
}

// builtWires returns each vendor's calls for n purchases, one per event.
func builtWires(t *testing.T, n int) [consentmode.NumVendors]*wireSink {
	t.Helper()
	var sinks [consentmode.NumVendors]*wireSink
	for v := range sinks {
		sinks[v] = &wireSink{}
	}
	g, err := New(Options{Config: testConfig(t, "https://api.example"), Sink: func(v consentmode.Vendor, _, _ string) (Sink, error) { return sinks[v], nil }})
	if err != nil {
		t.Fatal(err)
	}
	f := consentmode.VendorFacts{Consent: state(G, G, G)}
	for i := range n {
		h := hitN(i)
		if !g.Offer(g.Plan(&f, h.Query, h.Body), h) {
			t.Fatal("Offer refused")
		}
	}
	g.Close()
	return sinks
}

// TestMergeBuiltCalls: the calls the builder makes, one per event, merge
// into one call per vendor that carries every event once, keeps the token
// and the account's fields, and passes the API's schema.
func TestMergeBuiltCalls(t *testing.T) {
	t.Parallel()
	fake, err := vendortest.New(vendortest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 5
	for v, s := range builtWires(t, n) {
		if len(s.wires) != n {
			t.Fatalf("%s: %d calls, want %d", consentmode.Vendor(v), len(s.wires), n)
		}
		merged, err := Merge(s.wires, nil)
		if err != nil {
			t.Fatalf("%s: %v", consentmode.Vendor(v), err)
		}
		head, body, _ := bytes.Cut(merged, []byte("\r\n\r\n"))
		first, _, _ := bytes.Cut(s.wires[0], []byte("\r\n\r\n"))
		if withoutContentLength(head) == nil || !bytes.Equal(withoutContentLength(head), withoutContentLength(first)) {
			t.Errorf("%s: head %q, want the calls' own", consentmode.Vendor(v), head)
		}
		if !bytes.Contains(head, fmt.Appendf(nil, "Content-Length: %d", len(body))) {
			t.Errorf("%s: Content-Length does not match the body: %q", consentmode.Vendor(v), head)
		}
		var doc map[string]any
		d := json.NewDecoder(bytes.NewReader(body))
		d.UseNumber() // as the fake reads calls
		if err := d.Decode(&doc); err != nil {
			t.Fatal(err)
		}
		if v == int(consentmode.VendorMeta) && doc["access_token"] != metaToken {
			t.Errorf("meta: access_token %v", doc["access_token"])
		}
		delete(doc, "access_token") // auth, which the fake checks apart
		if ps := fake.Schema(consentmode.Vendor(v)).Check(consentmode.Vendor(v), doc); len(ps) > 0 {
			t.Errorf("%s: merged call fails the schema: %v", consentmode.Vendor(v), ps)
		}
		data, _ := doc["data"].([]any)
		ids := map[string]int{}
		for _, e := range data {
			ev := e.(map[string]any)
			id, _ := ev["event_id"].(string)
			if id == "" {
				id, _ = ev["eventId"].(string)
			}
			ids[id]++
		}
		for i := range n {
			if ids[fmt.Sprintf("evt-%d", i)] != 1 {
				t.Errorf("%s: evt-%d %d times in the merged call", consentmode.Vendor(v), i, ids[fmt.Sprintf("evt-%d", i)])
			}
		}
	}
}

// TestMergeRefuses: calls of different endpoints or accounts, bodies that
// are not a vendor's JSON, and more than 1,000 events do not merge (the
// lane then sends them one by one).
func TestMergeRefuses(t *testing.T) {
	t.Parallel()
	s := builtWires(t, 2)
	meta, ms := s[consentmode.VendorMeta].wires, s[consentmode.VendorMicrosoft].wires
	otherToken := bytes.Replace(meta[1], []byte(metaToken), []byte("meta-token-9"), 1)
	big := fmt.Appendf(nil, `{"data":[%s{}]}`, strings.Repeat("{},", maxCallEvents))
	bigWire := fmt.Appendf(nil, "POST /x HTTP/1.1\r\nHost: api.example\r\nContent-Length: %d\r\n\r\n%s", len(big), big)
	for name, wires := range map[string][][]byte{
		"two vendors":       {meta[0], ms[0]},
		"two tokens":        {meta[0], otherToken},
		"not JSON":          {meta[0], []byte("POST /v21.0/1234567890/events HTTP/1.1\r\n\r\nnope")},
		"no body":           {meta[0], []byte("GET / HTTP/1.1")},
		"over 1,000 events": {bigWire, bigWire},
	} {
		if _, err := Merge(wires, nil); !errors.Is(err, errMerge) {
			t.Errorf("%s: %v, want errMerge", name, err)
		}
	}
}

func FuzzMerge(f *testing.F) {
	f.Add([]byte("POST /e HTTP/1.1\r\nA: b\r\nContent-Length: 12\r\n\r\n{\"data\":[1]}"), []byte("POST /e HTTP/1.1\r\nA: b\r\nContent-Length: 15\r\n\r\n{\"data\":[2,{}]}"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		out, err := Merge([][]byte{a, b}, nil)
		if err != nil {
			return
		}
		// A merge is one request whose body holds both calls' events.
		head, body, ok := bytes.Cut(out, []byte("\r\n\r\n"))
		if !ok || !json.Valid(body) || !bytes.HasSuffix(head, fmt.Appendf(nil, "Content-Length: %d", len(body))) {
			t.Fatalf("merged %q", out)
		}
	})
}

// TestRefused: TikTok's answers are read for their code; the others' are
// judged by their status.
func TestRefused(t *testing.T) {
	t.Parallel()
	if Refused(consentmode.VendorMeta) != nil || Refused(consentmode.VendorMicrosoft) != nil {
		t.Error("Meta and Microsoft say refusals with their status")
	}
	r := Refused(consentmode.VendorTikTok)
	for body, want := range map[string]bool{
		`{"code":0,"message":"OK","data":{}}`:  false,
		`{"code":40001,"message":"bad token"}`: true,
		`{"message":"no code"}`:                true,
		`<html>proxy</html>`:                   true,
		``:                                     true,
	} {
		if got := r([]byte(body)); got != want {
			t.Errorf("%q: refused %v, want %v", body, got, want)
		}
	}
}
