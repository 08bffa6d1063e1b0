package proxy

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/consentgate/consentgate/consentmode"
)

// sampleHeader returns a request header that row r of
// consentmode.RequestHeaders governs, with a value, and any header it
// needs beside it.
func sampleHeader(r consentmode.HeaderRule) (name, value string, extra map[string]string) {
	switch r.Name {
	case consentmode.HeaderGeo:
		return "CF-IPCountry", "US", nil
	case consentmode.HeaderListed:
		return "Accept-Language", "de", map[string]string{"Connection": "Accept-Language"}
	case consentmode.HeaderOther:
		return "X-Unlisted", "v", nil
	case "Referer":
		return "Referer", "https://shop.example/cart?order=42", nil
	case "Cookie":
		return "Cookie", "session=s3cr3t", nil
	}
	name = strings.TrimSuffix(r.Name, "*")
	if name != r.Name {
		name += "Test"
	}
	return name, "sample", nil
}

// TestHeaderTable sends one header of every row of
// consentmode.RequestHeaders through the gateway and checks what the
// upstream received and what the decision log reported against the row:
// the table is the specification of header hygiene. The rows share one
// gateway and run one after another: row i's hit is the upstream's i-th
// request and the decision log's i-th line.
func TestHeaderTable(t *testing.T) {
	t.Parallel()
	const hit = "/g/collect?v=2&tid=G-ABC123&gcs=G111&gcd=13r3r3r2r5l1&cid=1.2&en=page_view"
	g, parent := newGateway(t, ""), t
	sent := 0
	for _, r := range consentmode.RequestHeaders {
		if r.Op == consentmode.HeaderTransport {
			continue // the client's own: fasthttp writes these
		}
		i := sent
		sent++
		t.Run(r.Name, func(t *testing.T) {
			name, value, extra := sampleHeader(r)
			headers := map[string]string{name: value, "CF-IPCountry": "US"}
			for k, v := range extra {
				headers[k] = v
			}
			g.t = t // the row's failures are the row's
			defer func() { g.t = parent }()
			g.do(fromProxy, "GET", hit, headers, "")
			reqs := g.up.requests()
			if len(reqs) != i+1 {
				t.Fatalf("upstream received %d requests after row %d, want %d", len(reqs), i, i+1)
			}
			up := reqs[i]
			var got string
			var sent bool
			for k, v := range up.Header {
				if strings.EqualFold(k, name) {
					got, sent = v, true
				}
			}
			var line struct{ Removed []string }
			if err := json.Unmarshal([]byte(g.waitLog(i + 1)[i]), &line); err != nil {
				t.Fatal(err)
			}
			reported := r.Field != "" && slices.Contains(line.Removed, r.Field)
			switch r.Op {
			case consentmode.HeaderForward:
				if !sent || got != value || reported {
					t.Errorf("%s: upstream got %q (sent %v), reported %v; want it forwarded unreported", name, got, sent, reported)
				}
			case consentmode.HeaderDrop:
				if sent || !reported {
					t.Errorf("%s: upstream got %q (sent %v), removed %v; want it dropped and reported as %s", name, got, sent, line.Removed, r.Field)
				}
			case consentmode.HeaderOrigin:
				if got != "https://shop.example/" || !reported {
					t.Errorf("%s: upstream got %q, removed %v; want the origin, reported as %s", name, got, line.Removed, r.Field)
				}
			case consentmode.HeaderCookies:
				if sent || !reported {
					t.Errorf("%s: upstream got %q, removed %v; want no Cookie, reported as %s", name, got, line.Removed, r.Field)
				}
			}
		})
	}
}

// TestHeaderTableIndex checks that every row is reachable: a header of
// each row is looked up to that row.
func TestHeaderTableIndex(t *testing.T) {
	t.Parallel()
	geo := []string{"CF-IPCountry"}
	for _, r := range consentmode.RequestHeaders {
		if r.Name == consentmode.HeaderListed {
			continue // decided by the Connection header, not the name
		}
		name, _, _ := sampleHeader(r)
		row := requestHeaders.lookup([]byte(canonicalHeader(name)), geo)
		if row.op != r.Op || (r.Field != "" && row.field.String() != r.Field) {
			t.Errorf("%s (row %q): op %v field %v, want %v %q", name, r.Name, row.op, row.field, r.Op, r.Field)
		}
	}
}
