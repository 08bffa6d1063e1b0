package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strings"

	"go.uber.org/zap"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/consentmode"
	"github.com/consentgate/consentgate/proxy"
)

// headerFlags collects repeated -H 'Name: value' flags.
type headerFlags map[string]string

func (h headerFlags) String() string { return "" }

func (h headerFlags) Set(s string) error {
	name, value, ok := strings.Cut(s, ":")
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("header %q is not 'Name: value'", s)
	}
	name = strings.TrimSpace(name)
	if prev, dup := h[name]; dup {
		if strings.EqualFold(name, "Cookie") {
			h[name] = prev + "; " + strings.TrimSpace(value)
			return nil
		}
		h[name] = prev + ", " + strings.TrimSpace(value)
		return nil
	}
	h[name] = strings.TrimSpace(value)
	return nil
}

// newOfflineHandler builds a Handler for explain and audit: it decides
// exactly as serve does but never sends anything. Close it after use.
func newOfflineHandler(cfg *config.Config) (*proxy.Handler, error) {
	return proxy.NewHandler(cfg, zap.NewNop(), proxy.NewMetrics(version), nil, proxy.Options{})
}

func cmdExplain(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("explain")
	path := configFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	method := fs.String("X", "", "request `METHOD` (default GET, or POST with --body)")
	body := fs.String("body", "", "request body `TEXT`, or @FILE")
	regionFlag := fs.String("region", "", "visitor region `CC` (ISO 3166-1/-2), instead of geo headers")
	clientFlag := fs.String("client-ip", "", "visitor `IP` address")
	headers := headerFlags{}
	fs.Var(headers, "H", "add the request header `'Name: value'` (repeatable)")
	if err := parseFlags(fs, reorder(args, map[string]bool{"json": true, "h": true, "help": true}), stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError(fs, stderr, "give one URL")
	}
	b := *body
	if strings.HasPrefix(b, "@") {
		data, err := os.ReadFile(b[1:])
		if err != nil {
			return err
		}
		b = string(data)
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	h, err := newOfflineHandler(cfg)
	if err != nil {
		return err
	}
	defer h.Close()
	e, err := h.Explain(proxy.Hit{Method: *method, URL: fs.Arg(0), Headers: headers, Body: b, Region: *regionFlag, ClientIP: *clientFlag})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(e)
	}
	printExplanation(stdout, e)
	return nil
}

// reorder moves flags after positional arguments to the front, so that
// "explain URL --json" works like "explain --json URL". bools names the
// flags that take no value.
func reorder(args []string, bools map[string]bool) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && !bools[name] && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		pos = append(pos, a)
	}
	return append(flags, pos...)
}

// printExplanation writes the readable form of an explanation.
func printExplanation(w io.Writer, e *proxy.Explanation) {
	if e.Error != "" {
		fmt.Fprintf(w, "rejected: %s (HTTP %d); nothing is forwarded\n", e.Error, e.Status)
		return
	}
	fmt.Fprintf(w, "route    %s (%s)\n", e.Route, e.Family)
	fmt.Fprintf(w, "region   %s (policy: %s)\n", e.Region, e.PolicyRegion)
	fmt.Fprintf(w, "action   %s", strings.ToUpper(e.Action))
	if !e.Enforced {
		fmt.Fprint(w, "  (dry run: the original hit is forwarded)")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "consent  %-19s %-8s %-22s %s\n", "type", "enforced", "decided by", "what the hit said")
	for t := range consentmode.NumTypes {
		fmt.Fprintf(w, "         %-19s %-8s %-22s %s\n", consentmode.Type(t), e.Consent[t], e.Sources[t], saidText(e, consentmode.Type(t)))
	}
	fmt.Fprintf(w, "reasons  %s\n", strings.Join(e.Reasons, ", "))
	removed, replaced := splitReplaced(e)
	fmt.Fprintf(w, "removed  %s\n", strings.Join(removed, ", "))
	if len(replaced) > 0 {
		fmt.Fprintf(w, "replaced %s (the forward carries the gateway's value, not the hit's)\n", strings.Join(replaced, ", "))
	}
	fmt.Fprintf(w, "client   %s (%s)\n", e.ClientIP, clientFromText[e.ClientIPFrom])
	if e.Forward == nil {
		fmt.Fprintf(w, "forward  nothing (the browser gets HTTP %d)\n", e.Status)
	} else {
		fmt.Fprintf(w, "forward  %s %s\n", e.Forward.Method, e.Forward.URL)
		names := make([]string, 0, len(e.Forward.Headers))
		for k := range e.Forward.Headers {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			fmt.Fprintf(w, "         %s: %s\n", k, e.Forward.Headers[k])
		}
		if e.Forward.Body != "" {
			fmt.Fprintf(w, "body\n%s\n", e.Forward.Body)
		}
		if e.Delivery == "queue" {
			fmt.Fprintln(w, "delivery queue: the browser gets 204 at once; the gateway delivers with retries")
		} else {
			fmt.Fprintln(w, "delivery sync: the browser gets the upstream's answer")
		}
	}
	printVendors(w, e)
	fmt.Fprintf(w, "policy   %s (consent.profile %s)\n", e.PolicyVersion, e.Profile)
}

// printVendors prints each other vendor's call of the hit, why, and the
// request that would leave (token redacted).
func printVendors(w io.Writer, e *proxy.Explanation) {
	for v, call := range e.Vendors {
		if call == "" {
			continue
		}
		name := consentmode.Vendor(v).String()
		why := "consent allows it all"
		if len(e.VendorWhy[name]) > 0 {
			why = strings.Join(e.VendorWhy[name], ", ")
		}
		fmt.Fprintf(w, "vendor   %-9s %s (%s)\n", name, strings.ToUpper(call), why)
		for _, c := range e.VendorCalls {
			if c.Vendor == name {
				fmt.Fprintf(w, "         %s %s (%d event(s), built off the browser's path; the lane may merge it with other events)\n         %s\n", c.Method, c.URL, c.Events, c.Body)
			}
		}
		if s := e.VendorSkipped[name]; s.Consent > 0 {
			fmt.Fprintf(w, "         %d event(s) left out: not conversions (conversions_only)\n", s.Consent)
		}
		if s := e.VendorSkipped[name]; s.Incomplete > 0 {
			fmt.Fprintf(w, "         %d event(s) left out: a field the API requires is missing (such as the page URL or the user agent)\n", s.Incomplete)
		}
	}
}

// clientFromText says in words where explain's client IP came from.
var clientFromText = map[string]string{
	"given":           "given with --client-ip",
	"x-forwarded-for": "the X-Forwarded-For header, believed from explain's stand-in peer 127.0.0.1, a trusted proxy",
	"peer":            "none given: explain's stand-in peer; use --client-ip or an X-Forwarded-For header",
}

// splitReplaced splits the removed fields into those the forward no
// longer has and those it carries with the gateway's value instead of
// the hit's (a cookieless cid and sid, a trimmed Referer): "removed cid"
// beside a forward with a cid would mislead.
func splitReplaced(e *proxy.Explanation) (removed, replaced []string) {
	if e.Forward == nil {
		return e.Removed, nil
	}
	params := map[string]bool{}
	for _, q := range append([]string{e.Forward.URL[strings.IndexByte(e.Forward.URL, '?')+1:]}, strings.Split(e.Forward.Body, "\n")...) {
		if v, err := url.ParseQuery(q); err == nil {
			for k := range v {
				params[k] = true
			}
		}
	}
	cookies := map[string]bool{}
	for _, c := range strings.Split(e.Forward.Headers["Cookie"], ";") {
		name, _, _ := strings.Cut(strings.TrimSpace(c), "=")
		cookies[name] = name != ""
	}
	for _, f := range e.Removed {
		kind, name, ok := strings.Cut(f, ":")
		var kept bool
		switch {
		case !ok:
			kept = params[f]
		case kind == "header":
			_, kept = e.Forward.Headers[name]
		case kind == "cookie":
			kept = cookies[name]
		}
		if kept {
			replaced = append(replaced, f)
		} else {
			removed = append(removed, f)
		}
	}
	return removed, replaced
}

// saidText lists what each input of the hit said about type t, and flags
// an over-claim: an input said granted, the gateway enforced denied.
func saidText(e *proxy.Explanation, t consentmode.Type) string {
	var parts, granted []string
	for _, in := range consentmode.SaidInputs {
		v := e.Said[t.String()][in]
		if v == "" {
			continue
		}
		parts = append(parts, in+" "+v)
		if v == "granted" {
			granted = append(granted, in)
		}
	}
	if len(parts) == 0 {
		return "nothing (region default)"
	}
	s := strings.Join(parts, ", ")
	if len(granted) > 0 && e.Consent[t] == "denied" {
		s += "  << OVER-CLAIM: " + strings.Join(granted, ", ") + " said granted"
	}
	return s
}
