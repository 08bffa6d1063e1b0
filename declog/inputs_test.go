package declog

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/consentgate/consentgate/consentmode"
)

// identifyingHit carries consent inputs and identifiers side by side.
var identifyingHit = Hit{
	Query:  []byte("v=2&tid=G-ABC123&gcs=G100&gcd=13p3p3p2p5l1&npa=1&gdpr=1&gdpr_consent=CPzHq4APzHq4AAHABBENC&us_privacy=1YNN&cid=1174285007.1749196701&uid=user-4711&up.plan=gold&en=page_view&dl=https%3A%2F%2Fshop.example%2F%3Fmail%3Djo%2540example.com"),
	Cookie: []byte("_ga=GA1.1.SECRETGA; _ga_ABC=GS1.SECRET; session=SECRETSESSION; euconsent-v2=CPzHq4APzHq4AAHABBENC"),
	GPC:    true,
}

// TestRecordInputs: a logged record holds the hit's consent inputs and
// the names of its catalogue parameters and cookies, never a value of
// another parameter or cookie.
func TestRecordInputs(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	l := New(&buf, nil, nil)
	l.Add(loggedDecision(t), &identifyingHit)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	line := buf.String()
	for _, secret := range []string{"1174285007", "user-4711", "gold", "SECRET", "jo%2540", "shop.example", "session"} {
		if strings.Contains(line, secret) {
			t.Errorf("record holds %q: %s", secret, line)
		}
	}
	dec := json.NewDecoder(strings.NewReader(line))
	dec.DisallowUnknownFields()
	var r Record
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("decode %s: %v", line, err)
	}
	want := map[string]string{"tag": "G-ABC123", "gcs": "G100", "gcd": "13p3p3p2p5l1", "npa": "1", "gdpr": "1",
		"gdpr_consent": "CPzHq4APzHq4AAHABBENC", "us_privacy": "1YNN", "euconsent-v2": "CPzHq4APzHq4AAHABBENC"}
	got := map[string]string{}
	for i, v := range r.Inputs.Values {
		if v != "" {
			got[Input(i).Name()] = v
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("inputs (-want +got):\n%s\n%s", diff, line)
	}
	names := strings.Join(r.Inputs.Present.Names(), " ")
	if !r.Inputs.GPC {
		t.Errorf("gpc not recorded: %s", line)
	}
	for _, n := range []string{"cid", "uid", "up.*", "cookie:_ga", "cookie:_ga_*", "cookie:other"} {
		if !strings.Contains(" "+names+" ", " "+n+" ") {
			t.Errorf("params %q lack %s", names, n)
		}
	}
}

// TestRecordInputsFailClosed: a consent value that could hold anything
// (an e-mail address, an overlong string) is recorded as "?", which a
// replay reads as malformed.
func TestRecordInputsFailClosed(t *testing.T) {
	t.Parallel()
	x := readHit(&Hit{Query: []byte("gcs=jo%40example.com&gcd=" + strings.Repeat("1", 40) + "&npa=&tid=G-1")})
	in := x.inputs()
	if in.Values[InputGCS] != "?" || in.Values[InputGCD] != "?" || in.Values[InputNPA] != "?" || in.Values[InputTag] != "G-1" {
		t.Errorf("inputs %+v", in.Values)
	}
}

// TestNameIndex: the index readHit looks parameter and cookie names up in
// answers as the catalogue's own lookup does, for every name of the
// catalogue and names one byte off.
func TestNameIndex(t *testing.T) {
	t.Parallel()
	var keys []string
	for _, n := range consentmode.FieldNames() {
		keys = append(keys, n, n+"x", n[:len(n)-1], "x"+n, strings.ToUpper(n), strings.TrimPrefix(n, "cookie:"), "cookie:"+n)
	}
	longest := 0
	for _, slot := range paramNames {
		longest = max(longest, len(slot))
	}
	if longest > 3 {
		t.Errorf("a slot of the parameter index holds %d names; spread them (nameSlot)", longest)
	}
	for _, k := range append(keys, "", "a", "~", "cookie:", "\xff\x00") {
		f, ok := paramNames.lookup([]byte(k))
		wf, wok := consentmode.LookupField(k)
		if f != wf || ok != wok {
			t.Errorf("parameter %q: %v %v, want %v %v", k, f, ok, wf, wok)
		}
		f, ok = cookieNames.lookup([]byte(k))
		wf, wok = consentmode.LookupField("cookie:" + k)
		if k == "" {
			wf, wok = 0, false // readHit skips a cookie without a name
		}
		if f != wf || ok != wok {
			t.Errorf("cookie %q: %v %v, want %v %v", k, f, ok, wf, wok)
		}
	}
}

// readHitCorpus is hits from the recorded public requests and odd ones.
func readHitCorpus(t testing.TB) []Hit {
	data, err := os.ReadFile("../testdata/public-hits.tsv")
	if err != nil {
		t.Fatal(err)
	}
	hits := []Hit{identifyingHit, {}, {GPC: true},
		{Query: []byte("gcs=jo%40example.com&gcd=" + strings.Repeat("1", 40) + "&npa=&tid=G-1&tag=x&dma=1&dma_cps=sypeh&gpp=DBAB&gpp_sid=2,6&up.x=1&u1=2&u=3&=x&&euconsent-v2=a&header:Referer=1&cookie:_ga=2")},
		{Matrix: []byte("src=123;type=x;cat=y;ord=1;gcs=G111;u1=a;u12x=b"), PathTag: []byte("AW-1"), Cookie: []byte("euconsent-v2=\"x\"; OptanonConsent=a; =b; ;_ga_XYZ=1;  _gcl_au=2 ;FPGCLAW=3;cookie:_ga=4; other\u00a0=5")},
		{Query: []byte("tid=G-\xff&gcs=G1\"0&id=é&measurement_id=G-2"), Cookie: []byte("euconsent-v2=" + strings.Repeat("A", 5000))},
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 3 || strings.HasPrefix(line, "#") {
			continue
		}
		path, query, _ := strings.Cut(f[2], "?")
		_, matrix, _ := strings.Cut(path, ";")
		hits = append(hits, Hit{Query: []byte(query), Matrix: []byte(matrix), Cookie: []byte("_ga=GA1.1.2; _gid=x; FPID=y")})
	}
	return hits
}

// TestReadHitMatchesOld: readHit records what it recorded before its name
// index and switch (oldReadHit), for recorded and odd hits.
func TestReadHitMatchesOld(t *testing.T) {
	t.Parallel()
	for i, h := range readHitCorpus(t) {
		checkReadHit(t, i, &h)
	}
}

// FuzzReadHit: readHit records what oldReadHit did, for any hit.
func FuzzReadHit(f *testing.F) {
	for _, h := range readHitCorpus(f) {
		f.Add(h.Query, h.Matrix, h.Cookie, h.GPC)
	}
	f.Fuzz(func(t *testing.T, query, matrix, cookie []byte, gpc bool) {
		checkReadHit(t, 0, &Hit{Query: query, Matrix: matrix, Cookie: cookie, GPC: gpc})
	})
}

func checkReadHit(t *testing.T, i int, h *Hit) {
	t.Helper()
	got, want := readHit(h).inputs(), oldReadHit(h).inputs()
	if *got != *want {
		t.Errorf("hit %d %q %q %q:\n got %+v\nwant %+v", i, h.Query, h.Matrix, h.Cookie, *got, *want)
	}
}
