package declog

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
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
	x := readHit(&Hit{Query: []byte("gcs=jo%40example.com&gcd=" + strings.Repeat("1", 40) + "&npa=&tid=G-1")})
	in := x.inputs()
	if in.Values[InputGCS] != "?" || in.Values[InputGCD] != "?" || in.Values[InputNPA] != "?" || in.Values[InputTag] != "G-1" {
		t.Errorf("inputs %+v", in.Values)
	}
}
