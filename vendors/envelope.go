package vendors

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/consentgate/consentgate/consentmode"
)

// Envelope is the consent state a merchant backend sends with its own
// vendor call (the Consent-Envelope header).
type Envelope struct {
	// Query holds the consent parameters as a query string (gcs, gcd,
	// npa, gdpr, gdpr_consent, gpp, gpp_sid, us_privacy), ready for
	// consentmode.Decide's Input.Query. It is a copy.
	Query  []byte
	GPC    bool
	Region consentmode.Region
}

// Envelope errors. A malformed envelope wraps ErrEnvelopeMalformed with
// the reason; the caller blocks the call either way.
var (
	ErrEnvelopeMissing   = errors.New("vendors: no consent envelope")
	ErrEnvelopeMalformed = errors.New("vendors: malformed consent envelope")
)

// MaxEnvelope bounds an envelope's length: a TC string and a GPP string
// fit with room to spare.
const MaxEnvelope = 4096

// envelopeKeys are the consent parameters an envelope may carry besides
// gpc and region.
var envelopeKeys = []string{"gcs", "gcd", "npa", "gdpr", "gdpr_consent", "gpp", "gpp_sid", "us_privacy"}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrEnvelopeMalformed}, args...)...)
}

// ParseEnvelope reads a Consent-Envelope value, a query string such as
// gcs=G111&gcd=13r3r3r2r5l1&gdpr=1&gdpr_consent=…&gpc=1&region=DE.
// Unknown or repeated keys, bad escapes, a gpc other than 0 or 1, a bad
// region and more than MaxEnvelope bytes are errors; so are an empty
// value and one without gcs or gcd (the region's default would decide,
// which may grant). The result does not refer to b. Errors name keys, never values.
func ParseEnvelope(b []byte) (Envelope, error) {
	var e Envelope
	if len(b) == 0 {
		return e, ErrEnvelopeMissing
	}
	if len(b) > MaxEnvelope {
		return e, malformed("longer than %d bytes", MaxEnvelope)
	}
	var seen uint16 // bit i: envelopeKeys[i]; bits 14, 15: gpc, region
	q := make([]byte, 0, len(b))
	for rest, more := b, true; more; {
		var pair []byte
		pair, rest, more = cutByte(rest, '&')
		k, v, ok := cutByte(pair, '=')
		if !ok || len(k) == 0 {
			return Envelope{}, malformed("a pair without a key and '='")
		}
		val, err := url.QueryUnescape(string(v))
		if err != nil {
			return Envelope{}, malformed("bad escape in %s", safeKey(k))
		}
		bit := uint16(0)
		switch string(k) {
		case "gpc":
			bit = 1 << 14
			switch val {
			case "1":
				e.GPC = true
			case "0":
			default:
				return Envelope{}, malformed("gpc is not 0 or 1")
			}
		case "region":
			bit = 1 << 15
			r, ok := consentmode.ParseRegion([]byte(val))
			if !ok {
				return Envelope{}, malformed("region is not an ISO 3166 code")
			}
			e.Region = r
		default:
			i := index(envelopeKeys, string(k))
			if i < 0 {
				return Envelope{}, malformed("unknown key %s", safeKey(k))
			}
			bit = 1 << i
			if len(q) > 0 {
				q = append(q, '&')
			}
			q = append(q, pair...)
		}
		if seen&bit != 0 {
			return Envelope{}, malformed("%s repeated", k)
		}
		seen |= bit
	}
	// The envelope must state the Consent Mode state (gcs or gcd): TCF,
	// GPP and US Privacy only deny, and without a state the region's
	// default, which may grant, would decide. Fail closed.
	if seen&(1<<index(envelopeKeys, "gcs")|1<<index(envelopeKeys, "gcd")) == 0 {
		return Envelope{}, malformed("no consent state (gcs or gcd)")
	}
	e.Query = q
	return e, nil
}

// safeKey quotes an unknown key for an error, cut short: it is input.
func safeKey(k []byte) string {
	if len(k) > 24 {
		k = k[:24]
	}
	return fmt.Sprintf("%q", k)
}

func index(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}
