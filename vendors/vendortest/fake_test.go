package vendortest

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/consentmode"
)

func start(t *testing.T) *Server {
	t.Helper()
	s, err := Start(Options{Tokens: [3]string{"m", "s", "t"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func post(t *testing.T, s *Server, path string, header map[string]string, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.HasPrefix(path, "/open_api/") && resp.StatusCode == http.StatusOK {
		// TikTok says a refusal in a 200's body: code 0 is success.
		var r struct{ Code int }
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("TikTok answer %q: %v", b, err)
		}
		if r.Code != 0 {
			return r.Code - 40000
		}
	}
	return resp.StatusCode
}

const okTikTok = `{"event_source":"web","event_source_id":"P","data":[{"event":"CompletePayment","event_time":1765100000,"properties":{"value":1.5,"contents":[{"content_id":"a","quantity":2}]}}]}`

// TestFakeChecksSchema: each kind of schema problem is answered 400 and
// recorded; a good payload is recorded as events.
func TestFakeChecksSchema(t *testing.T) {
	t.Parallel()
	const tt = "/open_api/v1.3/event/track/"
	auth := map[string]string{"Access-Token": "t"}
	for _, c := range []struct {
		name, body, problem string
	}{
		{"unknown field", strings.Replace(okTikTok, `"event":`, `"evnt":"x","event":`, 1), "unknown field data[].evnt"},
		{"wrong type", strings.Replace(okTikTok, `"event_time":1765100000`, `"event_time":"1765100000"`, 1), "data[].event_time is string"},
		{"integer with a fraction", strings.Replace(okTikTok, `"quantity":2`, `"quantity":2.5`, 1), "data[].properties.contents[].quantity"},
		{"missing required", strings.Replace(okTikTok, `"event":"CompletePayment",`, ``, 1), "missing required field data[].event"},
		{"event not an object", strings.Replace(okTikTok, `"data":[{`, `"data":[1,{`, 1), "an element of data is"},
		{"bad enum", strings.Replace(okTikTok, `"event_source":"web"`, `"event_source":"website"`, 1), "event_source = website"},
	} {
		s := start(t)
		if code := post(t, s, tt, auth, c.body); code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", c.name, code)
		}
		if v := s.Violations(); len(v) != 1 || !strings.Contains(v[0], c.problem) {
			t.Errorf("%s: violations %v, want %q", c.name, v, c.problem)
		}
	}
	s := start(t)
	if code := post(t, s, tt, auth, okTikTok); code != http.StatusOK {
		t.Fatalf("good payload: %d %v", code, s.Violations())
	}
	if e := s.Events(consentmode.VendorTikTok); len(e) != 1 || e[0]["event"] != "CompletePayment" {
		t.Errorf("events %v", e)
	}
}

func TestFakeAuthAndRoutes(t *testing.T) {
	t.Parallel()
	s := start(t)
	meta := `{"access_token":"m","data":[{"event_name":"Purchase","event_time":1,"action_source":"website","event_source_url":"https://a.example/","user_data":{"client_user_agent":"UA"}}]}`
	ms := `{"data":[{"eventType":"custom","eventTime":1,"userData":{"clientUserAgent":"UA"}}]}`
	for _, c := range []struct {
		path   string
		header map[string]string
		body   string
		want   int
	}{
		{"/v21.0/123/events", nil, meta, 200},
		{"/v21.0/123/events", nil, strings.Replace(meta, `"m"`, `"x"`, 1), 401},
		{"/v1/123/events", map[string]string{"Authorization": "Bearer s"}, ms, 200},
		{"/v1/123/events", map[string]string{"Authorization": "s"}, ms, 401},
		{"/open_api/v1.3/event/track/", map[string]string{"Access-Token": "wrong"}, okTikTok, 401},
		{"/nowhere", nil, "{}", 404},
	} {
		if code := post(t, s, c.path, c.header, c.body); code != c.want {
			t.Errorf("%s: %d, want %d", c.path, code, c.want)
		}
	}
	if got := len(s.Violations()); got != 3 {
		t.Errorf("%d violations, want 3 (the token failures)", got)
	}
	if len(s.Received(consentmode.VendorMeta)) != 2 || len(s.Events(consentmode.VendorMicrosoft)) != 1 {
		t.Error("requests not recorded per vendor")
	}
}

func TestFakeDown(t *testing.T) {
	t.Parallel()
	s := start(t)
	s.SetDown(true)
	h := map[string]string{"Access-Token": "t"}
	if code := post(t, s, "/open_api/v1.3/event/track/", h, okTikTok); code != 503 {
		t.Errorf("down: %d", code)
	}
	s.SetDown(false)
	if code := post(t, s, "/open_api/v1.3/event/track/", h, okTikTok); code != 200 {
		t.Errorf("up: %d", code)
	}
	if err := s.WaitEvents(consentmode.VendorTikTok, 1, time.Second); err != nil {
		t.Error(err)
	}
	if err := s.WaitEvents(consentmode.VendorTikTok, 2, 10*time.Millisecond); err == nil {
		t.Error("WaitEvents returned without the events")
	}
}

// TestGoldensPassSchema checks every golden body of package vendors
// against the schema, so a golden rewritten with -update is checked too.
func TestGoldensPassSchema(t *testing.T) {
	t.Parallel()
	f, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "golden", "*.json"))
	if len(files) < 21 {
		t.Fatalf("%d golden files, want 21", len(files))
	}
	sent := 0
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(string(b), "-- no call") {
			continue
		}
		v, _ := consentmode.ParseVendor(strings.Split(filepath.Base(p), ".")[1])
		var doc map[string]any
		d := json.NewDecoder(strings.NewReader(string(b)))
		d.UseNumber()
		if err := d.Decode(&doc); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		delete(doc, "access_token")
		if ps := f.schemas[v].Check(v, doc); len(ps) > 0 {
			t.Errorf("%s: %v", p, ps)
		}
		sent++
	}
	if sent < 15 {
		t.Errorf("only %d goldens send", sent)
	}
}
