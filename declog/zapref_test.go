package declog

import (
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/consentmode"
)

// This file keeps the decision log's former encoder, zap's JSON encoder
// driven by ObjectMarshalers, as the reference the appenders of line.go
// must match byte for byte (TestLineMatchesZap, FuzzRecordEncoding).

// zapEncoder is the encoder configuration the log used.
var zapEncoder = zapcore.NewJSONEncoder(zapcore.EncoderConfig{
	EncodeTime: zapcore.RFC3339NanoTimeEncoder, EncodeDuration: zapcore.MillisDurationEncoder, LineEnding: zapcore.DefaultLineEnding,
})

// zapLine encodes r as the log did.
func zapLine(r *Record) []byte {
	buf, err := zapEncoder.EncodeEntry(zapcore.Entry{}, []zapcore.Field{zap.Inline(r)})
	if err != nil {
		panic(err)
	}
	defer buf.Free()
	return append([]byte(nil), buf.Bytes()...)
}

// zapRecord is the record the log built of e, its inputs converted by
// inputs; seq and prev are the chain's (0 and "": no chain).
func zapRecord(e *Entry, seq uint64, prev string) Record {
	r := oldNewRecord(&e.Decision, e.Config, true)
	r.Time, r.Hit = e.At, e.Hit
	r.Status, r.Delivery, r.Error = e.Status, e.Delivery, e.ErrKind
	r.UpstreamMS = float64(e.Latency) / float64(time.Millisecond)
	r.setVendors(e.Vendors, e.Envelope)
	if e.inputs != nil {
		r.Inputs = e.inputs.inputs()
		e.inputs = nil
	}
	r.Seq, r.Prev = seq, prev
	return r
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
	if !r.Vendors.IsZero() {
		if err := enc.AddObject("vendors", &r.Vendors); err != nil {
			return err
		}
	}
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

// MarshalLogObject writes v for the decision log.
func (v *TypeValues) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	for t, s := range v {
		if s != "" {
			enc.AddString(consentmode.Type(t).String(), s)
		}
	}
	return nil
}

func (v *VendorValues) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	for x, s := range v {
		if s != "" {
			enc.AddString(consentmode.Vendor(x).String(), s)
		}
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

// MarshalLogObject writes in for the decision log: the inputs present in
// order, "gpc" when true, then "params" (the names present).
func (in *Inputs) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	for i, v := range in.Values {
		if v != "" {
			enc.AddString(inputNames[i], v)
		}
	}
	if in.GPC {
		enc.AddBool("gpc", true)
	}
	return enc.AddArray("params", fieldList(in.Present))
}

type fieldList consentmode.FieldSet

func (l fieldList) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	s := consentmode.FieldSet(l)
	for f := range s.All {
		enc.AppendString(f.String())
	}
	return nil
}

// inputs converts x (off the hit path) and returns it to the pool.
func (x *hitInputs) inputs() *Inputs {
	in := &Inputs{GPC: x.gpc, Present: x.present}
	for i, s := range x.span {
		switch {
		case s[1] == 0:
		case s[0] < 0:
			in.Values[i] = "?"
		default:
			in.Values[i] = string(x.buf[s[0]:s[1]])
		}
	}
	hitInputsPool.Put(x)
	return in
}

// oldNewRecord is NewRecord as the log used it with zap: it renders d, decided under cfg. Hits that matched no route
// have only the configuration's fields.
func oldNewRecord(d *consentmode.Decision, cfg *config.Config, matched bool) Record {
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
