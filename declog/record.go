package declog

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/consentmode"
)

// Record is one decision as every output shows it: the decision log writes
// one per line (MarshalLogObject), explain, /debug/explain and audit print
// it (JSON), and audit reads decision-log lines back into it. NewRecord is
// the only place a consentmode.Decision becomes one.
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
		Reasons:       d.Reasons.Strings(),
		Removed:       d.Removed.Names(),
		Enforced:      cfg.Enforce,
		PolicyVersion: cfg.PolicyVersion,
	}
	if !matched {
		return r
	}
	r.Route = consentmode.Routes[d.Route].Name
	r.Family = d.Family.String()
	r.Region = d.Region.String()
	r.PolicyRegion = "default"
	if !d.PolicyRegion.IsUnknown() {
		r.PolicyRegion = d.PolicyRegion.String()
	} else if d.Region.IsUnknown() {
		r.PolicyRegion = "unknown"
	}
	r.Action = d.Action.String()
	for t := range consentmode.NumTypes {
		r.Consent[t] = d.Consent.Value[t].String()
		r.Sources[t] = d.SourceName(consentmode.Type(t), cfg.Policy)
		if v := d.Claimed[t]; v != consentmode.Unset {
			r.Claimed[t] = v.String()
		}
	}
	return r
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

// MarshalLogObject writes r as a decision-log line: every field but the
// explain-only ones (PolicyRegion, Said), the consent maps in type order.
func (r *Record) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddTime("ts", r.Time)
	enc.AddUint64("hit", r.Hit)
	enc.AddString("route", r.Route)
	enc.AddString("family", r.Family)
	enc.AddString("region", r.Region)
	enc.AddString("action", r.Action)
	enc.AddBool("enforced", r.Enforced)
	if err := enc.AddObject("consent", &r.Consent); err != nil {
		return err
	}
	if err := enc.AddObject("sources", &r.Sources); err != nil {
		return err
	}
	if err := enc.AddObject("claimed", &r.Claimed); err != nil {
		return err
	}
	if err := enc.AddArray("reasons", stringList(r.Reasons)); err != nil {
		return err
	}
	if err := enc.AddArray("removed", stringList(r.Removed)); err != nil {
		return err
	}
	enc.AddInt("status", r.Status)
	enc.AddString("delivery", r.Delivery)
	enc.AddFloat64("upstream_ms", r.UpstreamMS)
	enc.AddString("error", r.Error)
	enc.AddString("policy_version", r.PolicyVersion)
	if r.Inputs != nil {
		if err := enc.AddObject("inputs", r.Inputs); err != nil {
			return err
		}
	}
	if r.Seq != 0 {
		enc.AddUint64("seq", r.Seq)
		enc.AddString("prev", r.Prev)
	}
	return nil
}

// TypeValues holds one value per consent type, indexed by
// consentmode.Type. It reads and writes as an object keyed by type name in
// type order ({"ad_storage":"denied",...}), empty values left out.
type TypeValues [consentmode.NumTypes]string

// MarshalLogObject writes v for the decision log.
func (v *TypeValues) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	for t, s := range v {
		if s != "" {
			enc.AddString(consentmode.Type(t).String(), s)
		}
	}
	return nil
}

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

type stringList []string

func (l stringList) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	for _, s := range l {
		enc.AppendString(s)
	}
	return nil
}
