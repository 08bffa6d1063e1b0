package vendors

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/consentgate/consentgate/consentmode"
)

// TEMPORARY: replaced by the real implementation (branch vendors).

type Gateway struct{ opts Options }

func New(opts Options) (*Gateway, error) { return &Gateway{opts: opts}, nil }

func (g *Gateway) Plan(f *consentmode.VendorFacts, query, body []byte) Plan { return Plan{} }

func (p *Plan) Sends() bool { return false }

func (g *Gateway) Offer(p Plan, h *Hit) bool { return false }

func (g *Gateway) Close() {}

func (g *Gateway) Preview(p Plan, h *Hit) []Call { return nil }

type Call struct {
	Vendor string          `json:"vendor"`
	Method string          `json:"method"`
	URL    string          `json:"url"`
	Events int             `json:"events"`
	Body   json.RawMessage `json:"body"`
}

type Envelope struct {
	Query  []byte
	GPC    bool
	Region consentmode.Region
}

var ErrEnvelopeMissing = errors.New("vendors: no consent envelope")

var ErrPayload = errors.New("vendors: malformed payload")

func ParseEnvelope(b []byte) (Envelope, error) { return Envelope{}, ErrEnvelopeMissing }

func (g *Gateway) Forward(v consentmode.Vendor, c consentmode.VendorCall, payload []byte, at time.Time) (int, error) {
	return 0, nil
}
