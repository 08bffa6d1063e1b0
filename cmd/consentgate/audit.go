package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/consentmode"
	"github.com/consentgate/consentgate/declog"
	"github.com/consentgate/consentgate/proxy"
)

// auditHit is one hit read from a capture.
type auditHit struct {
	Where   string
	Method  string
	URL     string
	Headers map[string]string
	Body    string
}

// auditResult is one line of the audit: an explained hit or a
// decision-log line read back.
type auditResult struct {
	Where       string             `json:"hit"`
	Explanation *proxy.Explanation `json:"decision"`
	Violations  []violation        `json:"violations,omitempty"`
	Logged      *declog.Record     `json:"logged,omitempty"`
}

// record is the decision record of r, and whether the hit was rejected
// (explained hits only: nothing was decided).
func (r *auditResult) record() (rec *declog.Record, rejected bool) {
	if r.Logged != nil {
		return r.Logged, false
	}
	e := r.Explanation
	return &e.Record, e.Error != "" || e.Route == ""
}

func cmdAudit(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("audit")
	path := configFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	regionFlag := fs.String("region", "", "visitor region `CC` for hits without a geo header")
	verifyFlag := fs.Bool("verify", false, "check the decision logs' hash chain and signatures instead (exit 0 verified, 3 unsigned, 4 tampered)")
	pubkey := fs.String("pubkey", "", "with --verify: the public key `FILE` (consentgate keygen) that signs the checkpoints")
	if err := parseFlags(fs, reorder(args, map[string]bool{"json": true, "verify": true, "h": true, "help": true}), stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError(fs, stderr, "give at least one FILE")
	}
	if *verifyFlag {
		return verifyLogs(fs.Args(), *pubkey, *asJSON, stdout, stderr)
	}
	if *pubkey != "" {
		return usageError(fs, stderr, "--pubkey goes with --verify")
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	if *regionFlag != "" {
		if _, ok := consentmode.ParseRegion([]byte(*regionFlag)); !ok {
			return fmt.Errorf("--region %q is not an ISO 3166 code", *regionFlag)
		}
	}
	// The handler (the proxy's decision path) is built for the first
	// captured hit only: a decision log is audited with declog alone.
	var h *proxy.Handler
	defer func() {
		if h != nil {
			h.Close()
		}
	}()
	var results []auditResult
	skipped := 0
	for _, file := range fs.Args() {
		hits, logged, skip, err := readCapture(file)
		if err != nil {
			return err
		}
		skipped += skip
		if len(hits) > 0 && h == nil {
			if h, err = newOfflineHandler(cfg); err != nil {
				return err
			}
		}
		for _, hit := range hits {
			results = append(results, auditOne(h, cfg, hit, *regionFlag))
		}
		for _, l := range logged {
			results = append(results, auditLogged(l))
		}
	}
	s := summarize(results, skipped)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Hits    []auditResult `json:"hits"`
			Summary *auditSummary `json:"summary"`
		}{results, s}); err != nil {
			return err
		}
	} else {
		printAudit(stdout, results, s)
	}
	if s.Violations > 0 {
		fmt.Fprintf(stderr, "audit: %d invariant violation(s) in %d hit(s)\n", s.Violations, s.FailedHits)
		return errFailed
	}
	return nil
}

func auditOne(h *proxy.Handler, cfg *config.Config, hit auditHit, region string) auditResult {
	hasGeo := false
	for k := range hit.Headers {
		for _, g := range cfg.GeoHeaders {
			if strings.EqualFold(k, g) {
				hasGeo = true
			}
		}
	}
	if hasGeo {
		region = ""
	}
	e, err := h.Explain(proxy.Hit{Method: hit.Method, URL: hit.URL, Headers: hit.Headers, Body: hit.Body, Region: region})
	if err != nil {
		return auditResult{Where: hit.Where, Explanation: &proxy.Explanation{Record: declog.Record{Error: err.Error()}}}
	}
	vs := append(checkInvariants(e, hit.URL, hit.Body, cfg.Policy.AdsDataRedaction), checkVendorInvariants(e)...)
	return auditResult{Where: hit.Where, Explanation: e, Violations: vs}
}

// auditLogged checks a decision-log line for consistency: the action must
// follow from the logged consent, and a dry-run line whose decision was
// not forward let data out that enforcement would have kept.
func auditLogged(l loggedRecord) auditResult {
	r := auditResult{Where: l.where, Logged: &l.Record}
	add := func(inv, detail string) {
		r.Violations = append(r.Violations, violation{Invariant: inv, Detail: detail})
	}
	if !l.Enforced && l.Action != "forward" && l.Route != declog.EnvelopeRoute {
		add("unenforced_decision", "dry run: a "+l.Action+" decision was forwarded unchanged")
	}
	var storage consentmode.Type = consentmode.NumTypes // none
	switch l.Family {
	case "ga4", "ua":
		storage = consentmode.AnalyticsStorage
	case "ads", "floodlight":
		storage = consentmode.AdStorage
	}
	if storage != consentmode.NumTypes && l.Consent[storage] == "denied" && l.Action != "cookieless" && l.Action != "block" {
		add("storage_denied_means_cookieless", storage.String()+" denied but action "+l.Action)
	}
	if l.Action == "block" && l.Status != 0 && l.Status != http.StatusNoContent && l.Route != declog.EnvelopeRoute {
		add("blocked_forwards_nothing", fmt.Sprintf("blocked hit answered %d", l.Status))
	}
	if l.Action == "block" && l.Route != declog.EnvelopeRoute {
		for v, c := range l.Vendors {
			if strings.HasPrefix(c, "send") {
				add("blocked_sends_nothing", fmt.Sprintf("blocked hit sent to %s (%s)", consentmode.Vendor(v), c))
			}
		}
	}
	r.Violations = append(r.Violations, checkLoggedVendors(&l.Record)...)
	return r
}

// loggedRecord is a decision-log line read back, and where it was.
type loggedRecord struct {
	declog.Record
	where string
}

// readCapture reads a TSV of hits, a HAR export or a decision log.
func readCapture(path string) (hits []auditHit, logged []loggedRecord, skipped int, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, 0, err
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		hits, skipped, err = readTSV(path, data)
		return hits, nil, skipped, err
	}
	if hits, skipped, ok := readHAR(path, data); ok {
		return hits, nil, skipped, nil
	}
	logged, err = readDecisionLog(path, data)
	return nil, logged, 0, err
}

// readHAR reads the tag hits of a HAR export; ok is false when data is
// not one.
func readHAR(path string, data []byte) (hits []auditHit, skipped int, ok bool) {
	var har struct {
		Log *struct {
			Entries []struct {
				Request struct {
					Method  string `json:"method"`
					URL     string `json:"url"`
					Headers []struct{ Name, Value string }
					Cookies []struct{ Name, Value string }
					Post    *struct {
						Text string `json:"text"`
					} `json:"postData"`
				} `json:"request"`
			} `json:"entries"`
		} `json:"log"`
	}
	if json.Unmarshal(data, &har) != nil || har.Log == nil {
		return nil, 0, false
	}
	for i, e := range har.Log.Entries {
		r := e.Request
		if !isTagRequest(r.URL) {
			skipped++
			continue
		}
		hit := auditHit{Where: fmt.Sprintf("%s#%d", path, i+1), Method: r.Method, URL: r.URL, Headers: map[string]string{}}
		for _, hd := range r.Headers {
			if strings.HasPrefix(hd.Name, ":") || strings.EqualFold(hd.Name, "cookie") || strings.EqualFold(hd.Name, "host") || strings.EqualFold(hd.Name, "content-length") {
				continue
			}
			hit.Headers[hd.Name] = hd.Value
		}
		var cookies []string
		for _, c := range r.Cookies {
			cookies = append(cookies, c.Name+"="+c.Value)
		}
		if len(cookies) > 0 {
			hit.Headers["Cookie"] = strings.Join(cookies, "; ")
		}
		if r.Post != nil {
			hit.Body = r.Post.Text
		}
		hits = append(hits, hit)
	}
	return hits, skipped, true
}

// readDecisionLog reads a decision log: one declog.Record per line.
func readDecisionLog(path string, data []byte) ([]loggedRecord, error) {
	var logged []loggedRecord
	for n, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		r, err := declog.ParseRecord(line)
		if errors.Is(err, declog.ErrMark) {
			continue // a chain header or checkpoint: audit --verify checks those
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: neither a HAR file nor a decision log line", path, n+1)
		}
		logged = append(logged, loggedRecord{Record: r, where: fmt.Sprintf("%s:%d", path, n+1)})
	}
	return logged, nil
}

// readTSV reads the tag hits of a TSV capture (consentmode.ParseCapture).
func readTSV(path string, data []byte) (hits []auditHit, skipped int, err error) {
	captured, err := consentmode.ParseCapture(data)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	for _, c := range captured {
		if strings.HasPrefix(c.URL, "/") && !strings.HasPrefix(c.URL, "//") {
			return nil, 0, fmt.Errorf("%s:%d: %q is a relative URL: audit needs the host to tell a tag hit from the site's own pages; write it absolute, such as https://metrics.shop.example%s (or start it with // or, for a GA4 hit, with the query ?v=2&...)", path, c.Line, c.URL, c.URL)
		}
		rawURL := consentmode.RepairURL(c.URL, "gateway.invalid")
		method := c.Method
		if method == "" {
			method = "GET"
			if c.Body != "" {
				method = "POST"
			}
		}
		if !isTagRequest(rawURL) {
			skipped++
			continue
		}
		hits = append(hits, auditHit{Where: fmt.Sprintf("%s:%d", path, c.Line), Method: method, URL: rawURL, Body: c.Body})
	}
	return hits, skipped, nil
}

// isTagRequest reports whether a captured request goes to a route of the
// gateway: a Google host with a known path, or any host with an
// unambiguous tag path (not "/" or "/collect").
func isTagRequest(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	ri, ok := consentmode.MatchRoute([]byte(u.EscapedPath()))
	if !ok {
		return false
	}
	host := strings.ToLower(u.Hostname())
	for _, g := range []string{"google-analytics.com", "analytics.google.com", "doubleclick.net", "googletagmanager.com",
		"googleadservices.com", "googlesyndication.com", "fps.goog", "gateway.invalid"} {
		if host == g || strings.HasSuffix(host, "."+g) {
			return true
		}
	}
	if strings.HasPrefix(host, "www.google.") || host == "google.com" {
		return true
	}
	name := consentmode.Routes[ri].Name
	return name != "script_root" && name != "ua_collect"
}

// auditSummary is the report an auditor reads first.
type auditSummary struct {
	Hits       int                       `json:"hits"`
	Skipped    int                       `json:"skipped_non_tag"`
	Rejected   int                       `json:"rejected"`
	Actions    map[string]map[string]int `json:"family_actions"`
	Removed    map[string]int            `json:"removed_fields"`
	Regions    map[string]int            `json:"regions"`
	Sources    map[string]map[string]int `json:"deciding_sources"`
	OverClaim  map[string]*overClaim     `json:"over_claiming"`
	Violations int                       `json:"violations"`
	FailedHits int                       `json:"failed_hits"`
}

// overClaim counts, per consent type, how often hits claimed it granted and
// how often the gateway enforced denied instead, by deciding source.
type overClaim struct {
	ClaimedGranted int            `json:"claimed_granted"`
	EnforcedDenied int            `json:"enforced_denied"`
	BySource       map[string]int `json:"by_source"`
}

func summarize(results []auditResult, skipped int) *auditSummary {
	s := &auditSummary{Skipped: skipped, Actions: map[string]map[string]int{}, Removed: map[string]int{}, Regions: map[string]int{},
		Sources: map[string]map[string]int{}, OverClaim: map[string]*overClaim{}}
	for _, t := range consentmode.TypeNames() {
		s.Sources[t] = map[string]int{}
		s.OverClaim[t] = &overClaim{BySource: map[string]int{}}
	}
	for _, r := range results {
		s.Violations += len(r.Violations)
		if len(r.Violations) > 0 {
			s.FailedHits++
		}
		rec, rejected := r.record()
		if rejected {
			s.Rejected++
			continue
		}
		s.Hits++
		if s.Actions[rec.Family] == nil {
			s.Actions[rec.Family] = map[string]int{}
		}
		s.Actions[rec.Family][rec.Action]++
		s.Regions[rec.Region]++
		for _, f := range rec.Removed {
			s.Removed[f]++
		}
		for t, name := range consentmode.TypeNames() {
			if src := rec.Sources[t]; src != "" {
				s.Sources[name][src]++
			}
			if rec.Claimed[t] == "granted" {
				oc := s.OverClaim[name]
				oc.ClaimedGranted++
				if rec.Consent[t] == "denied" {
					oc.EnforcedDenied++
					oc.BySource[rec.Sources[t]]++
				}
			}
		}
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// deliveryOf is how an explained hit would leave ("none" when nothing does).
func deliveryOf(e *proxy.Explanation) string {
	if e.Delivery == "" {
		return "none"
	}
	return e.Delivery
}

func printAudit(w io.Writer, results []auditResult, s *auditSummary) {
	for _, r := range results {
		switch {
		case r.Logged != nil:
			l := r.Logged
			fmt.Fprintf(w, "%-28s %-22s %-8s %-10s delivery=%s  %s\n", r.Where, l.Route, l.Region, l.Action, l.Delivery, status(r.Violations))
		case r.Explanation.Error != "":
			fmt.Fprintf(w, "%-28s rejected: %s\n", r.Where, r.Explanation.Error)
		default:
			e := r.Explanation
			fmt.Fprintf(w, "%-28s %-22s %-8s %-10s removed=%s delivery=%s  %s\n", r.Where, e.Route, e.Region, e.Action, strings.Join(e.Removed, ","), deliveryOf(e), status(r.Violations))
		}
		for _, v := range r.Violations {
			fmt.Fprintf(w, "    VIOLATION %s: %s\n", v.Invariant, v.Detail)
		}
	}
	fmt.Fprintf(w, "\n## Over-claiming: consent the hits claimed and the gateway did not enforce\n\n")
	fmt.Fprintf(w, "| consent type | hits claiming granted | enforced denied | decided by |\n|---|---|---|---|\n")
	for _, t := range consentmode.TypeNames() {
		oc := s.OverClaim[t]
		var by []string
		for _, src := range sortedKeys(oc.BySource) {
			by = append(by, fmt.Sprintf("%s %d", src, oc.BySource[src]))
		}
		fmt.Fprintf(w, "| %s | %d | %d | %s |\n", t, oc.ClaimedGranted, oc.EnforcedDenied, strings.Join(by, ", "))
	}
	fmt.Fprintf(w, "\n## Hits per family and action (%d hits, %d rejected, %d non-tag requests skipped)\n\n", s.Hits, s.Rejected, s.Skipped)
	actions := []string{"forward", "strip", "cookieless", "block"}
	fmt.Fprintf(w, "| family | %s |\n|---|---|---|---|---|\n", strings.Join(actions, " | "))
	for _, f := range sortedKeys(s.Actions) {
		row := []string{f}
		for _, a := range actions {
			row = append(row, fmt.Sprint(s.Actions[f][a]))
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
	fmt.Fprintf(w, "\n## Removed fields\n\n| field | hits |\n|---|---|\n")
	for _, f := range sortedKeys(s.Removed) {
		fmt.Fprintf(w, "| %s | %d |\n", f, s.Removed[f])
	}
	fmt.Fprintf(w, "\n## Regions\n\n| region | hits |\n|---|---|\n")
	for _, r := range sortedKeys(s.Regions) {
		fmt.Fprintf(w, "| %s | %d |\n", r, s.Regions[r])
	}
	fmt.Fprintf(w, "\n## What decided each consent type\n\n| consent type | sources |\n|---|---|\n")
	for _, t := range consentmode.TypeNames() {
		var by []string
		for _, src := range sortedKeys(s.Sources[t]) {
			by = append(by, fmt.Sprintf("%s %d", src, s.Sources[t][src]))
		}
		fmt.Fprintf(w, "| %s | %s |\n", t, strings.Join(by, ", "))
	}
	fmt.Fprintf(w, "\n## Invariants\n\n")
	if s.Violations == 0 {
		fmt.Fprintf(w, "All invariants hold for %d hits.\n", s.Hits)
	} else {
		fmt.Fprintf(w, "%d violation(s) in %d hit(s): see VIOLATION lines above.\n", s.Violations, s.FailedHits)
	}
}

func status(vs []violation) string {
	if len(vs) == 0 {
		return "ok"
	}
	return "FAIL"
}

// verifyLogs checks the hash chain and the checkpoint signatures of the
// decision logs in files, in the order given (rotated files first).
func verifyLogs(files []string, pubkey string, asJSON bool, stdout, stderr io.Writer) error {
	var pub ed25519.PublicKey
	if pubkey != "" {
		var err error
		if pub, err = declog.ReadPublicKey(pubkey); err != nil {
			return err
		}
	}
	v := declog.NewVerifier(pub)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		v.File(f, data)
	}
	rep := v.Report()
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printVerify(stdout, rep)
	}
	switch rep.Verdict {
	case declog.Tampered:
		fmt.Fprintf(stderr, "audit --verify: TAMPERED: %d problem(s)\n", len(rep.Problems))
		return errTampered
	case declog.Unsigned:
		fmt.Fprintf(stderr, "audit --verify: chain intact, but %s\n", unsignedWhy(rep, pub != nil))
		return errUnsigned
	}
	return nil
}

func unsignedWhy(rep *declog.Report, haveKey bool) string {
	switch {
	case rep.Lines == 0:
		return "no lines to verify"
	case !haveKey:
		return "no --pubkey: signatures not checked"
	}
	n := 0
	for _, s := range rep.Unsigned {
		n += s.Lines
	}
	return fmt.Sprintf("%d line(s) not covered by a valid signature", n)
}

func printVerify(w io.Writer, rep *declog.Report) {
	fmt.Fprintf(w, "files    %s\n", strings.Join(rep.Files, " "))
	fmt.Fprintf(w, "lines    %d (%d decision records)\n", rep.Lines, rep.Records)
	switch {
	case rep.Start == "":
		fmt.Fprintf(w, "chain    none: no line carries seq and prev\n")
	case strings.Trim(rep.Start, "0") == "":
		fmt.Fprintf(w, "chain    starts in the first file\n")
	default:
		fmt.Fprintf(w, "chain    continues a line with SHA-256 %s (an earlier file)\n", rep.Start)
	}
	if rep.KeyID != "" {
		fmt.Fprintf(w, "key      %s\n", rep.KeyID)
	}
	for _, s := range rep.Signed {
		fmt.Fprintf(w, "signed   %s\n", spanText(s))
	}
	for _, s := range rep.Unsigned {
		fmt.Fprintf(w, "UNSIGNED %s\n", spanText(s))
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "TAMPERED %s %s: %s\n", p.Pos, p.Kind, p.Detail)
	}
	fmt.Fprintf(w, "verdict  %s\n", rep.Verdict)
}

func spanText(s declog.Span) string {
	seq := ""
	if s.From.Seq != 0 {
		seq = fmt.Sprintf(", seq %d-%d", s.From.Seq, s.To.Seq)
	}
	return fmt.Sprintf("%s - %s (%d lines%s)", s.From, s.To, s.Lines, seq)
}
