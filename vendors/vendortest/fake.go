// Package vendortest is a recording fake of the three vendor APIs the
// gateway calls (Meta Conversions API, Microsoft UET Conversions API,
// TikTok Events API) for tests and the shell and browser suites. It
// routes by path, checks the token, checks every payload against the
// schema files in vendors/testdata/schema (unknown field, wrong type,
// missing required field, bad enum: 400 and a recorded violation) and
// records the requests and events per vendor.
package vendortest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/consentgate/consentgate/consentmode"
)

// Request is one request a fake vendor API received.
type Request struct {
	Path   string
	Query  string
	Header http.Header
	Body   []byte
	// Status is what the fake answered.
	Status int
}

// Schema is one vendor's payload schema (vendors/testdata/schema).
type Schema struct {
	Endpoint string            `json:"endpoint"`
	Auth     string            `json:"auth"`
	Max      int               `json:"max_events_per_call"`
	Fields   map[string]string `json:"fields"`
	Required []string          `json:"required"`
	Enums    map[string][]any  `json:"enums"`
}

// Options configure a Fake.
type Options struct {
	// Tokens[v] is the token vendor v accepts; "" accepts any non-empty one.
	Tokens [consentmode.NumVendors]string
	// SchemaDir holds meta.json, microsoft.json and tiktok.json; ""
	// means this package's source tree (vendors/testdata/schema).
	SchemaDir string
}

// Fake is the recording fake. It is an http.Handler.
type Fake struct {
	opts    Options
	schemas [consentmode.NumVendors]Schema

	mu         sync.Mutex
	received   [consentmode.NumVendors][]Request
	events     [consentmode.NumVendors][]map[string]any
	violations []string
	down       bool
	downUntil  time.Time
	changed    chan struct{}
}

// SchemaDir returns the schema directory of this source tree.
func SchemaDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "schema")
}

// New loads the schemas and returns a Fake.
func New(opts Options) (*Fake, error) {
	if opts.SchemaDir == "" {
		opts.SchemaDir = SchemaDir()
	}
	f := &Fake{opts: opts, changed: make(chan struct{})}
	for v := range consentmode.Vendor(consentmode.NumVendors) {
		b, err := os.ReadFile(filepath.Join(opts.SchemaDir, v.String()+".json"))
		if err != nil {
			return nil, fmt.Errorf("vendortest: %w", err)
		}
		if err := json.Unmarshal(b, &f.schemas[v]); err != nil {
			return nil, fmt.Errorf("vendortest: %s schema: %w", v, err)
		}
	}
	return f, nil
}

// Server is a Fake behind an httptest server.
type Server struct {
	*Fake
	URL string
	srv *httptest.Server
}

// Start starts a Fake on a local port; Close stops it.
func Start(opts Options) (*Server, error) {
	f, err := New(opts)
	if err != nil {
		return nil, err
	}
	s := httptest.NewServer(f)
	return &Server{Fake: f, URL: s.URL, srv: s}, nil
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

var (
	metaPath = regexp.MustCompile(`^/v[0-9]{1,3}\.[0-9]{1,2}/[A-Za-z0-9_-]+/events$`)
	msPath   = regexp.MustCompile(`^/v1/[A-Za-z0-9_-]+/events$`)
)

// route returns the vendor of a path.
func route(path string) (consentmode.Vendor, bool) {
	switch {
	case metaPath.MatchString(path):
		return consentmode.VendorMeta, true
	case msPath.MatchString(path):
		return consentmode.VendorMicrosoft, true
	case path == "/open_api/v1.3/event/track/":
		return consentmode.VendorTikTok, true
	}
	return 0, false
}

// SetDown makes every vendor answer 503 (on) or serve again (off).
func (f *Fake) SetDown(on bool) {
	f.mu.Lock()
	f.down = on
	f.mu.Unlock()
}

// DownFor makes every vendor answer 503 for d from now.
func (f *Fake) DownFor(d time.Duration) {
	f.mu.Lock()
	f.downUntil = time.Now().Add(d)
	f.mu.Unlock()
}

// ServeHTTP answers one vendor API call.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	v, ok := route(r.URL.Path)
	if !ok || r.Method != http.MethodPost {
		http.Error(w, "no such API", http.StatusNotFound)
		return
	}
	req := Request{Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body}
	f.mu.Lock()
	defer func() {
		f.received[v] = append(f.received[v], req)
		close(f.changed)
		f.changed = make(chan struct{})
		f.mu.Unlock()
	}()
	if f.down || time.Now().Before(f.downUntil) {
		req.Status = http.StatusServiceUnavailable
		http.Error(w, "down", req.Status)
		return
	}
	var doc map[string]any
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&doc); err != nil {
		f.violate(w, &req, "%s: body is not a JSON object: %v", v, err)
		return
	}
	if p := f.auth(v, r, doc); p != "" {
		f.violations = append(f.violations, fmt.Sprintf("%s: %s", v, p))
		req.Status = http.StatusUnauthorized
		refuse(w, v, req.Status, p)
		return
	}
	if v == consentmode.VendorMeta {
		delete(doc, "access_token")
	}
	if ps := f.schemas[v].Check(v, doc); len(ps) > 0 {
		f.violate(w, &req, "%s", strings.Join(ps, "; "))
		return
	}
	for _, e := range doc["data"].([]any) {
		if o, ok := e.(map[string]any); ok {
			f.events[v] = append(f.events[v], o)
		}
	}
	req.Status = http.StatusOK
	w.Header().Set("Content-Type", "application/json")
	if v == consentmode.VendorTikTok {
		fmt.Fprintf(w, `{"code":0,"message":"OK","request_id":"fake","data":{}}`)
		return
	}
	fmt.Fprintf(w, `{"events_received":%d}`, len(doc["data"].([]any)))
}

func (f *Fake) violate(w http.ResponseWriter, req *Request, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	f.violations = append(f.violations, msg)
	req.Status = http.StatusBadRequest
	v, _ := route(req.Path)
	refuse(w, v, req.Status, msg)
}

// refuse answers a refused call as the vendor's API does: TikTok's with
// HTTP 200 and a JSON code other than 0 (Request.Status still records
// the refusal), the others with the status.
func refuse(w http.ResponseWriter, v consentmode.Vendor, status int, msg string) {
	if v == consentmode.VendorTikTok {
		w.Header().Set("Content-Type", "application/json")
		b, _ := json.Marshal(map[string]any{"code": 40000 + status, "message": msg, "request_id": "fake"})
		_, _ = w.Write(b)
		return
	}
	http.Error(w, msg, status)
}

// auth checks the token where the vendor takes it; it returns the
// problem or "".
func (f *Fake) auth(v consentmode.Vendor, r *http.Request, doc map[string]any) string {
	var got string
	switch v {
	case consentmode.VendorMeta:
		got, _ = doc["access_token"].(string)
		if got == "" {
			got = r.URL.Query().Get("access_token")
		}
	case consentmode.VendorMicrosoft:
		if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			got = t
		}
	case consentmode.VendorTikTok:
		got = r.Header.Get("Access-Token")
	}
	switch want := f.opts.Tokens[v]; {
	case got == "":
		return "no token"
	case want != "" && got != want:
		return "wrong token"
	}
	return ""
}

// Received returns the requests vendor v received.
func (f *Fake) Received(v consentmode.Vendor) []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.received[v]...)
}

// Changed returns a channel closed when the fake next records a request.
func (f *Fake) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

// Events returns the events vendor v accepted, in order.
func (f *Fake) Events(v consentmode.Vendor) []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]any(nil), f.events[v]...)
}

// Violations returns every schema or auth violation seen.
func (f *Fake) Violations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.violations...)
}

// WaitEvents waits until vendor v accepted at least n events, or fails
// when timeout passes.
func (f *Fake) WaitEvents(v consentmode.Vendor, n int, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		got, ch := len(f.events[v]), f.changed
		f.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			return fmt.Errorf("vendortest: %s got %d events, want %d", v, got, n)
		}
	}
}

// Check returns the problems of a decoded payload against the schema:
// unknown fields, wrong types, missing required fields, values outside
// an enum, more events than the API takes. Meta's custom_data takes
// any extra key (the SDK's custom_properties).
func (s *Schema) Check(v consentmode.Vendor, doc map[string]any) []string {
	var ps []string
	if data, ok := doc["data"].([]any); ok && s.Max > 0 && len(data) > s.Max {
		ps = append(ps, fmt.Sprintf("%s: %d events, at most %d", v, len(data), s.Max))
	}
	s.walk(v, "", doc, &ps)
	for _, r := range s.Required {
		s.required(v, doc, "", r, &ps)
	}
	sort.Strings(ps)
	return ps
}

func join(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

func (s *Schema) walk(v consentmode.Vendor, prefix string, obj map[string]any, ps *[]string) {
	for k, x := range obj {
		p := join(prefix, k)
		t, ok := s.Fields[p]
		if !ok {
			if v == consentmode.VendorMeta && prefix == "data[].custom_data" {
				continue
			}
			*ps = append(*ps, fmt.Sprintf("%s: unknown field %s", v, p))
			continue
		}
		if !typeOK(t, x) {
			*ps = append(*ps, fmt.Sprintf("%s: %s is %T, want %s", v, p, x, t))
			continue
		}
		if enum, ok := s.Enums[p]; ok {
			vals := []any{x}
			if a, isA := x.([]any); isA {
				vals = a
			}
			for _, y := range vals {
				if !inEnum(enum, y) {
					*ps = append(*ps, fmt.Sprintf("%s: %s = %v is not one of %v", v, p, y, enum))
				}
			}
		}
		switch y := x.(type) {
		case map[string]any:
			s.walk(v, p, y, ps)
		case []any:
			for _, e := range y {
				if o, isO := e.(map[string]any); isO {
					s.walk(v, p+"[]", o, ps)
				} else if t == "array" {
					*ps = append(*ps, fmt.Sprintf("%s: an element of %s is %T, want object", v, p, e))
				}
			}
		}
	}
}

func inEnum(enum []any, x any) bool {
	for _, e := range enum {
		if fmt.Sprint(e) == fmt.Sprint(x) {
			return true
		}
	}
	return false
}

func typeOK(t string, x any) bool {
	switch t {
	case "string":
		_, ok := x.(string)
		return ok
	case "integer":
		n, ok := x.(json.Number)
		if !ok {
			return false
		}
		_, err := n.Int64()
		return err == nil
	case "number":
		_, ok := x.(json.Number)
		return ok
	case "boolean":
		_, ok := x.(bool)
		return ok
	case "object":
		_, ok := x.(map[string]any)
		return ok
	case "array":
		_, ok := x.([]any)
		return ok
	case "array<string>":
		a, ok := x.([]any)
		if !ok {
			return false
		}
		for _, e := range a {
			if _, ok := e.(string); !ok {
				return false
			}
		}
		return true
	case "string|array<string>":
		return typeOK("string", x) || typeOK("array<string>", x)
	}
	return false
}

// required checks path r (relative to prefix) in obj: "data[].x" must be
// in every element of data.
func (s *Schema) required(v consentmode.Vendor, obj map[string]any, prefix, r string, ps *[]string) {
	head, rest, more := strings.Cut(r, ".")
	if arr, ok := strings.CutSuffix(head, "[]"); ok {
		a, _ := obj[arr].([]any)
		for _, e := range a {
			if o, isO := e.(map[string]any); isO && more {
				s.required(v, o, join(prefix, head), rest, ps)
			}
		}
		return
	}
	x, ok := obj[head]
	if !ok {
		*ps = append(*ps, fmt.Sprintf("%s: missing required field %s", v, join(prefix, head)))
		return
	}
	if o, isO := x.(map[string]any); isO && more {
		s.required(v, o, join(prefix, head), rest, ps)
	}
}

// Schema returns vendor v's schema.
func (f *Fake) Schema(v consentmode.Vendor) *Schema { return &f.schemas[v] }
