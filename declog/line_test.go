package declog

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/consentmode"
)

// oddStrings are strings zap's encoder escapes: quotes, backslashes,
// every control character, DEL, HTML and JSONP characters, multi-byte
// UTF-8, U+FFFD itself, and invalid UTF-8 of several kinds.
var oddStrings = []string{
	"", "plain", `say "hi"`, `back\slash`, `\"`, "\n\r\t\b\f\x00\x01\x1f", "\x7f", "<a href='x'>&amp;</a>",
	"\u2028\u2029", "héllo wörld", "日本語", "🍪 emoji", "\ufffd", "\xff", "\xc3", "a\xc3(b", "\xe2\x82", "\xed\xa0\x80",
	"\xf4\x90\x80\x80", "\xc0\xaf", "trail\xf0\x9f\x8d", "mixed \"\x00\xffé\\", strings.Repeat("x\x1fé\"", 50),
}

// TestLineMatchesZap: the log's appender writes a record exactly as zap's
// JSON encoder wrote it, for odd strings in every string field, odd
// numbers and times in several zones.
func TestLineMatchesZap(t *testing.T) {
	t.Parallel()
	e := loggedDecision(t)
	base := NewRecord(&e.Decision, e.Config, true)
	base.Time, base.Hit, base.Status = time.Date(2026, 11, 30, 8, 0, 0, 900_000_000, time.UTC), 7, 204
	in := &Inputs{GPC: true}
	in.Values[InputGCS], in.Values[InputTCFCookie] = "G100", "CPz"
	in.Present.Add(consentmode.Field(0))
	in.Present.Add(consentmode.Field(3))
	n := 0
	check := func(r Record) {
		t.Helper()
		n++
		if got, want := r.appendLine(nil), zapLine(&r); !bytes.Equal(got, want) {
			t.Errorf("record %d:\n got %q\nwant %q", n, got, want)
		}
	}
	for _, s := range oddStrings {
		r := base
		r.Route, r.Family, r.Region, r.Action, r.Delivery, r.Error, r.PolicyVersion = s, s, s, s, s, s, s
		r.Consent[0], r.Sources[1], r.Claimed[3] = s, s, s
		r.Reasons, r.Removed = []string{s, "x", s}, []string{s}
		check(r)
		r.Vendors[consentmode.VendorMicrosoft] = s
		check(r)
		r.Vendors = VendorValues{"block", "send+no_ids", s}
		check(r)
		r.Inputs, r.Seq, r.Prev = &Inputs{Values: in.Values, Present: in.Present}, 9, s
		r.Inputs.Values[InputGPP] = s
		check(r)
	}
	for _, f := range []float64{0, 12.5, 0.001, 1e-9, 1e21, 123456789.123, -3, math.NaN(), math.Inf(1), math.Inf(-1), math.SmallestNonzeroFloat64, math.MaxFloat64} {
		r := base
		r.UpstreamMS = f
		check(r)
	}
	zones := []*time.Location{time.UTC, time.Local, time.FixedZone("x", -(3*3600 + 30*60)), time.FixedZone("", 5*3600+45*60)}
	for _, at := range []time.Time{{}, time.Now(), time.Unix(0, 0), time.Unix(1_800_000_000, 1), time.Unix(1_800_000_000, 120_000_000), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		for _, z := range zones {
			r := base
			r.Time = at.In(z)
			check(r)
		}
	}
	for _, r := range []Record{{}, {Hit: math.MaxUint64, Status: -1, Enforced: true}, {Status: math.MinInt32, Inputs: &Inputs{}}, {Seq: 1}, {Inputs: in, Reasons: []string{}}} {
		check(r)
	}
}

// TestLogMatchesZap: what the log writes of an entry (a chained log,
// recorded inputs, regions and CMP cookies as sources, odd
// configurations) is what zap wrote of the record the log built of it.
func TestLogMatchesZap(t *testing.T) {
	t.Parallel()
	e := loggedDecision(t)
	cfg := *e.Config
	policy := *cfg.Policy
	policy.CMPCookies = append([]consentmode.CMPCookie{{Name: "euconsent-v2"}, {Name: "odd\"cookie\\\xff"}}, policy.CMPCookies...)
	cfg.Policy = &policy
	hits := []*Hit{nil, &identifyingHit, {}, {GPC: true},
		{Query: []byte("gcs=jo%40example.com&gcd=" + strings.Repeat("1", 40) + "&npa=&tid=G-1&dma=1&dma_cps=sypeh&gpp=DBAB&gpp_sid=2,6&up.x=1&=x&&")},
		{Matrix: []byte("src=123;type=x;cat=y;ord=1;gcs=G111;u1=a"), PathTag: []byte("AW-1"), Cookie: []byte("euconsent-v2=\"x\"; OptanonConsent=a; =b; ;")},
		{Query: []byte("tid=G-\xff&gcs=G1\"0&id=é"), Cookie: []byte("euconsent-v2=" + strings.Repeat("A", 5000))},
	}
	var buf syncBuffer
	l := unstarted(&buf, WithChain(Chain{Checkpoint: time.Hour}))
	defer l.buf.Stop()
	n := 0
	for _, region := range []string{"", "DE", "US-CA", "FR"} {
		for i, h := range hits {
			for _, odd := range oddStrings[:6] {
				n++
				e := e
				e.Hit, e.Status, e.ErrKind, e.Delivery = uint64(n), 200+n, odd, odd
				e.At = e.At.Add(time.Duration(n) * 1_234_567 * time.Nanosecond)
				e.Latency = time.Duration(n*n) * 7777 * time.Microsecond
				e.Config = &cfg
				if i%2 == 1 {
					c := cfg
					c.PolicyVersion, c.Enforce = odd, !c.Enforce
					e.Config = &c
				}
				if region != "" {
					e.Decision.Region, _ = consentmode.ParseRegion([]byte(region))
					e.Decision.Consent.Source[0] = consentmode.SourceRegionDefault
				}
				e.Decision.Consent.Source[1], e.Decision.Consent.Detail[1] = consentmode.SourceCMPCookie, uint8(n%3)
				e.Decision.Reasons |= consentmode.ReasonSet(n)
				ref := e
				if h != nil {
					e.inputs, ref.inputs = readHit(h), readHit(h)
				}
				r := zapRecord(&ref, l.chain.Seq+1, hex.EncodeToString(l.chain.Prev[:]))
				want := zapLine(&r)
				got := l.encode(&e)
				if !bytes.Equal(got, want) {
					t.Fatalf("entry %d:\n got %q\nwant %q", n, got, want)
				}
				l.emit(got)
			}
		}
	}
	if len(l.names.regions) == 0 || len(l.names.sources) == 0 {
		t.Errorf("name caches unused: %+v", l.names)
	}
}

// FuzzRecordEncoding: for any strings and numbers, the appender writes a
// record exactly as zap's JSON encoder does, and the line is valid JSON.
func FuzzRecordEncoding(f *testing.F) {
	for i, s := range oddStrings {
		f.Add(s, oddStrings[(i+1)%len(oddStrings)], uint64(i), int64(i)*1e15, float64(i)/3, i, true)
	}
	f.Fuzz(func(t *testing.T, s1, s2 string, u uint64, ns int64, ms float64, status int, flag bool) {
		r := Record{
			Time: time.Unix(0, ns).In(time.FixedZone("", status%(18*3600))), Hit: u,
			Route: s1, Family: s2, Region: s1 + s2, Action: s2, Enforced: flag,
			Reasons: []string{s1, s2}, Removed: strings.SplitAfter(s1, "a"),
			Status: status, Delivery: s2, UpstreamMS: ms, Error: s1, PolicyVersion: s2,
		}
		r.Consent[u%consentmode.NumTypes], r.Sources[0], r.Claimed[3] = s1, s2, s1
		r.Vendors[u%consentmode.NumVendors], r.Vendors[(u>>3)%consentmode.NumVendors] = s2, s1
		if flag {
			r.Inputs = &Inputs{GPC: status%2 == 0}
			r.Inputs.Values[u%uint64(NumInputs)], r.Inputs.Values[InputGCS] = s1, s2
			r.Inputs.Present[0], r.Inputs.Present[3] = u, u>>7
			r.Seq, r.Prev = u|1, s2
		}
		got, want := r.appendLine(nil), zapLine(&r)
		if !bytes.Equal(got, want) {
			t.Fatalf("\n got %q\nwant %q", got, want)
		}
		if !math.IsNaN(ms) && !math.IsInf(ms, 0) && r.Time.Year() >= 0 && r.Time.Year() <= 9999 && !json.Valid(got) {
			t.Fatalf("not JSON: %q", got)
		}
	})
}
