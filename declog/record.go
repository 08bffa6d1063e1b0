package declog

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/consentmode"
)

// Record is one decision as every output shows it: the decision log writes
// one per line (the appenders of line.go), explain, /debug/explain and
// audit print it (JSON), and audit reads decision-log lines back into it.
// fill, which NewRecord and the log's writer call, is the only place a
// consentmode.Decision becomes one.
type Record struct {
	// Time and Hit are set on decision-log lines: when the request was
	// read and its sequence number.
	Time time.Time `json:"ts,omitzero"`
	Hit  uint64    `json:"hit,omitempty"`

	Route  string `json:"route"`
	Family string `json:"family"`
	Region string `json:"region"`
	// PolicyRegion is the region rule that applied: a listed region,
	// "default" or "unknown" (explain only).
	PolicyRegion string `json:"policy_region,omitempty"`
	Action       string `json:"action"`
	Enforced     bool   `json:"enforced"`
	// Consent, Sources and Claimed are keyed by consent type: the enforced
	// value, what decided it, and what the hit itself claimed (types it
	// claimed nothing about are left out).
	Consent TypeValues `json:"consent"`
	Sources TypeValues `json:"sources"`
	Claimed TypeValues `json:"claimed"`
	// Said is what each of the hit's consent inputs (gcs, gcd, npa, mp,
	// tcf) said about each type, before merging; inputs that said nothing
	// are left out (explain only).
	Said    map[string]map[string]string `json:"said,omitempty"`
	Reasons []string                     `json:"reasons"`
	Removed []string                     `json:"removed"`
	// Status is what the browser got (explain: only when nothing is forwarded).
	Status int `json:"status,omitempty"`
	// Delivery is how a forwarded hit leaves: "queue" (the browser gets
	// 204 at once, the gateway delivers with retries), "sync" (the browser
	// waits for the upstream) or, in the log, "none".
	Delivery string `json:"delivery,omitempty"`
	// UpstreamMS is the upstream's answer time in milliseconds (log only).
	UpstreamMS float64 `json:"upstream_ms,omitempty"`
	// Error is why the hit failed: the kind of upstream error in the log,
	// the reason it was rejected in explain (nothing is forwarded then).
	Error         string `json:"error,omitempty"`
	PolicyVersion string `json:"policy_version"`
	// Vendors is the call each other vendor got from the hit ("block",
	// "send", "send+no_user_data+opt_out"); vendors without a call are
	// left out, and so is the field when none has one.
	Vendors VendorValues `json:"vendors,omitzero"`
	// Inputs are the hit's consent inputs (log only).
	Inputs *Inputs `json:"inputs,omitempty"`
	// Seq and Prev chain the line to the one before it (log only, with a
	// Chain): its number and the SHA-256 of the previous line.
	Seq  uint64 `json:"seq,omitempty"`
	Prev string `json:"prev,omitempty"`
}

// NewRecord renders d, decided under cfg. Hits that matched no route
// have only the configuration's fields.
func NewRecord(d *consentmode.Decision, cfg *config.Config, matched bool) Record {
	r := Record{
		Reasons: make([]string, 0, d.Reasons.Len()),
		Removed: make([]string, 0, d.Removed.Len()),
	}
	r.fill(d, cfg, matched, nil)
	if matched {
		r.PolicyRegion = "default"
		if !d.PolicyRegion.IsUnknown() {
			r.PolicyRegion = d.PolicyRegion.String()
		} else if d.Region.IsUnknown() {
			r.PolicyRegion = "unknown"
		}
	}
	return r
}

// fill sets the fields of r that d and cfg decide, but PolicyRegion
// (explain only), reusing r's Reasons and Removed; the others it leaves
// alone. n caches the strings consentmode builds on each call (nil: none
// cached); the decision log's writer passes its own, so that it allocates
// nothing per record.
func (r *Record) fill(d *consentmode.Decision, cfg *config.Config, matched bool, n *names) {
	r.Reasons, r.Removed = r.Reasons[:0], r.Removed[:0]
	for c := range d.Reasons.All {
		r.Reasons = append(r.Reasons, c.String())
	}
	for f := range d.Removed.All {
		r.Removed = append(r.Removed, f.String())
	}
	r.Enforced, r.PolicyVersion = cfg.Enforce, cfg.PolicyVersion
	if !matched {
		r.Route, r.Family, r.Region, r.Action = "", "", "", ""
		r.Consent, r.Sources, r.Claimed = TypeValues{}, TypeValues{}, TypeValues{}
		return
	}
	r.Route = consentmode.Routes[d.Route].Name
	r.Family = d.Family.String()
	r.Region = n.region(d.Region)
	r.Action = d.Action.String()
	for t := range consentmode.NumTypes {
		r.Consent[t] = d.Consent.Value[t].String()
		r.Sources[t] = n.source(d, consentmode.Type(t), cfg.Policy)
		r.Claimed[t] = ""
		if v := d.Claimed[t]; v != consentmode.Unset {
			r.Claimed[t] = v.String()
		}
	}
}

// names caches the region codes and source names that consentmode builds
// anew on each call (Region.String, Decision.SourceName). A nil *names
// caches nothing. Only the decision log's writer goroutine uses its own.
type names struct {
	regions map[consentmode.Region]string
	sources map[sourceKey]string
}

// sourceKey is everything Decision.SourceName reads for one type.
type sourceKey struct {
	src    consentmode.Source
	detail uint8
	region consentmode.Region
	policy *consentmode.Policy
}

// maxNames bounds each cache: past it, the cache starts over (regions
// come from request headers; policies from reloads).
const maxNames = 4096

func (n *names) region(r consentmode.Region) string {
	if n == nil {
		return r.String()
	}
	s, ok := n.regions[r]
	if !ok {
		if n.regions == nil || len(n.regions) >= maxNames {
			n.regions = make(map[consentmode.Region]string)
		}
		s = r.String()
		n.regions[r] = s
	}
	return s
}

// source is d.SourceName(t, p). Only the sources whose name SourceName
// builds (a CMP cookie, a region default) go through the cache.
func (n *names) source(d *consentmode.Decision, t consentmode.Type, p *consentmode.Policy) string {
	src := d.Consent.Source[t]
	if n == nil || src != consentmode.SourceCMPCookie && src != consentmode.SourceRegionDefault {
		return d.SourceName(t, p)
	}
	k := sourceKey{src, d.Consent.Detail[t], d.Region, p}
	s, ok := n.sources[k]
	if !ok {
		if n.sources == nil || len(n.sources) >= maxNames {
			n.sources = make(map[sourceKey]string)
		}
		s = d.SourceName(t, p)
		n.sources[k] = s
	}
	return s
}

// AddSaid fills Said from d: what each of the hit's consent inputs said.
func (r *Record) AddSaid(d *consentmode.Decision) {
	for t := range consentmode.NumTypes {
		name := consentmode.Type(t).String()
		for i, input := range consentmode.SaidInputs {
			if v := d.Said.Input(i)[t]; v != consentmode.Unset {
				if r.Said == nil {
					r.Said = map[string]map[string]string{}
				}
				if r.Said[name] == nil {
					r.Said[name] = map[string]string{}
				}
				r.Said[name][input] = v.String()
			}
		}
	}
}

// TypeValues holds one value per consent type, indexed by
// consentmode.Type. It reads and writes as an object keyed by type name in
// type order ({"ad_storage":"denied",...}), empty values left out.
type TypeValues [consentmode.NumTypes]string

// MarshalJSON writes v as an object in type order.
func (v TypeValues) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for t, s := range v {
		if s == "" {
			continue
		}
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(append(strconv.AppendQuote(b, consentmode.Type(t).String()), ':'), s)
	}
	return append(b, '}'), nil
}

// UnmarshalJSON reads an object keyed by type name; an unknown type name
// is an error.
func (v *TypeValues) UnmarshalJSON(b []byte) error {
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*v = TypeValues{}
	for name, s := range m {
		t, ok := consentmode.TypeByName(name)
		if !ok {
			return fmt.Errorf("declog: %q is not a consent type", name)
		}
		v[t] = s
	}
	return nil
}

// VendorValues holds one value per vendor, indexed by consentmode.Vendor.
// It reads and writes as an object keyed by vendor name in vendor order,
// empty values left out.
type VendorValues [consentmode.NumVendors]string

// IsZero reports whether no vendor has a value (omitzero).
func (v VendorValues) IsZero() bool { return v == VendorValues{} }

// MarshalJSON writes v as an object in vendor order.
func (v VendorValues) MarshalJSON() ([]byte, error) { return v.appendJSON(nil), nil }

// UnmarshalJSON reads an object keyed by vendor name; an unknown name is
// an error.
func (v *VendorValues) UnmarshalJSON(b []byte) error {
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*v = VendorValues{}
	for name, s := range m {
		x, ok := consentmode.ParseVendor(name)
		if !ok {
			return fmt.Errorf("declog: %q is not a vendor", name)
		}
		v[x] = s
	}
	return nil
}

// vendorCallNames[a][f] is VendorCall{Action: a, Flags: f}.String(),
// built once: the log's writer allocates nothing per record.
var vendorCallNames = func() (n [3][1 << consentmode.NumVendorFlags]string) {
	for a := range n {
		for f := range n[a] {
			n[a][f] = consentmode.VendorCall{Action: consentmode.VendorAction(a), Flags: consentmode.VendorFlags(f)}.String()
		}
	}
	return n
}()

// VendorCallName is c's name ("" for VendorNone: no call).
func VendorCallName(c consentmode.VendorCall) string {
	if c.Action == consentmode.VendorNone || int(c.Action) >= len(vendorCallNames) || int(c.Flags) >= len(vendorCallNames[0]) {
		return ""
	}
	return vendorCallNames[c.Action][c.Flags]
}

// setVendors sets r.Vendors from a hit's vendor calls; an envelope route's
// record is named after it (route vendor_envelope, family vendors, the
// one vendor's call as its action).
func (r *Record) setVendors(calls [consentmode.NumVendors]consentmode.VendorCall, envelope bool) {
	for v, c := range calls {
		r.Vendors[v] = VendorCallName(c)
	}
	if envelope {
		r.Route, r.Family, r.Action = EnvelopeRoute, EnvelopeFamily, ""
		for _, s := range r.Vendors {
			if s != "" {
				r.Action = s
			}
		}
	}
}

// The route and family of an envelope route's records.
const (
	EnvelopeRoute  = "vendor_envelope"
	EnvelopeFamily = "vendors"
)

// SetVendors sets the vendor calls of a record made by NewRecord (explain).
func (r *Record) SetVendors(calls [consentmode.NumVendors]consentmode.VendorCall) {
	r.setVendors(calls, false)
}
