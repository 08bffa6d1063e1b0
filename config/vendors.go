package config

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/consentgate/consentgate/consentmode"
)

// Vendors configures the conversions the gateway sends to other
// advertising vendors (Meta, Microsoft Advertising, TikTok) from the GA4
// hits it receives, under the same consent state (docs/vendors.md). The
// vendors' delivery lanes are made at start: changes need a restart.
type Vendors struct {
	// On[v] is vendor v's settings; nil when it is off.
	On [consentmode.NumVendors]*Vendor
	// Events maps a GA4 event name to what each vendor calls it.
	Events map[string]VendorEvent
	// EventIDParam is the GA4 parameter holding the event id the vendor's
	// browser pixel sends too (the vendors de-duplicate on it).
	EventIDParam string
	// BatchMaxEvents bounds the events of one vendor call.
	BatchMaxEvents int
	// EnvelopeToken is the bearer token merchants' backends present on
	// the envelope routes (/vendors/<name>/events); "" turns the routes
	// off. Never logged, never in Settings.
	EnvelopeToken string
}

// Any reports whether a vendor is on.
func (v *Vendors) Any() bool {
	for _, o := range v.On {
		if o != nil {
			return true
		}
	}
	return false
}

// Vendor is one vendor's account.
type Vendor struct {
	// ID is the Meta pixel id, the Microsoft UET tag id or the TikTok
	// pixel code.
	ID string
	// Token is the API access token. Never logged, never in Settings.
	Token string
	// Endpoint is the API's scheme and host (tests point it at a fake).
	Endpoint *url.URL
	// APIVersion is Meta's Graph API version ("v21.0"); "" for the others.
	APIVersion string
	// TestEventCode, when set, marks the events as tests (Meta, TikTok).
	TestEventCode string
}

// VendorEvent is the mapping of one GA4 event.
type VendorEvent struct {
	// Name[v] is vendor v's event name; "" when the event does not go to v.
	Name [consentmode.NumVendors]string
	// Conversion marks a conversion: it still goes to vendors restricted
	// to conversions (FlagConversionsOnly).
	Conversion bool
}

type vendorsFile struct {
	EnvelopeToken  string            `mapstructure:"envelope_token"`
	EventIDParam   string            `mapstructure:"event_id_param"`
	BatchMaxEvents int               `mapstructure:"batch_max_events"`
	Events         []vendorEventFile `mapstructure:"events"`
	Meta           vendorFile        `mapstructure:"meta"`
	Microsoft      vendorFile        `mapstructure:"microsoft"`
	TikTok         vendorFile        `mapstructure:"tiktok"`
}

type vendorFile struct {
	Enabled       bool   `mapstructure:"enabled"`
	ID            string `mapstructure:"id"`
	Token         string `mapstructure:"token"`
	TokenFile     string `mapstructure:"token_file"`
	Endpoint      string `mapstructure:"endpoint"`
	APIVersion    string `mapstructure:"api_version"`
	TestEventCode string `mapstructure:"test_event_code"`
}

type vendorEventFile struct {
	GA4        string `mapstructure:"ga4" doc:"The GA4 event name (en), such as purchase."`
	Meta       string `mapstructure:"meta" doc:"Meta's standard or custom event name, such as Purchase; empty: not sent to Meta."`
	Microsoft  string `mapstructure:"microsoft" doc:"Microsoft's event name (eventName of a custom event), such as purchase; empty: not sent to Microsoft."`
	TikTok     string `mapstructure:"tiktok" doc:"TikTok's event name, such as CompletePayment; empty: not sent to TikTok."`
	Conversion bool   `mapstructure:"conversion" doc:"A conversion: still sent where ad_personalization is denied and the vendor has no opt-out flag."`
}

// vendorIDPattern bounds what an id may look like: it goes into the API's
// URL path or body.
var vendorIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

var gaEventName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,39}$`)

// buildVendors validates the vendors section into c.Vendors.
func buildVendors(c *Config, f *vendorsFile) []error {
	var ps []error
	v := &c.Vendors
	v.EventIDParam, v.BatchMaxEvents, v.EnvelopeToken = f.EventIDParam, f.BatchMaxEvents, f.EnvelopeToken
	if tok := f.EnvelopeToken; tok != "" {
		if msg := weakSecret(tok); msg != "" || strings.ContainsAny(tok, " \t\r\n") {
			if msg == "" {
				msg = "holds spaces or line breaks"
			}
			ps = append(ps, problem("vendors.envelope_token", "%s: generate one with `openssl rand -hex 32`", msg))
		}
	}
	files := [consentmode.NumVendors]*vendorFile{consentmode.VendorMeta: &f.Meta, consentmode.VendorMicrosoft: &f.Microsoft, consentmode.VendorTikTok: &f.TikTok}
	for i, vf := range files {
		name := consentmode.Vendor(i).String()
		key := "vendors." + name
		if !vf.Enabled {
			continue
		}
		o := &Vendor{ID: vf.ID, APIVersion: vf.APIVersion, TestEventCode: vf.TestEventCode}
		if !vendorIDPattern.MatchString(vf.ID) {
			ps = append(ps, problem(key+".id", "%q is not an id (letters, digits, - and _, at most 64)", vf.ID))
		}
		switch {
		case vf.Token != "" && vf.TokenFile != "":
			ps = append(ps, problem(key+".token_file", "set token_file or token (CONSENTGATE_VENDORS_%s_TOKEN), not both", strings.ToUpper(name)))
		case vf.TokenFile != "":
			b, err := os.ReadFile(vf.TokenFile)
			if err != nil {
				ps = append(ps, problem(key+".token_file", "%v", err))
			}
			o.Token = string(bytes.TrimSpace(b))
			if err == nil && o.Token == "" {
				ps = append(ps, problem(key+".token_file", "%s is empty", vf.TokenFile))
			}
		case vf.Token != "":
			o.Token = vf.Token
		default:
			ps = append(ps, problem(key+".token", "the vendor is enabled without an API token: set token_file, or CONSENTGATE_VENDORS_%s_TOKEN", strings.ToUpper(name)))
		}
		if strings.ContainsAny(o.Token, " \t\r\n\"\\") {
			ps = append(ps, problem(key+".token", "holds spaces, quotes or line breaks"))
		}
		u, err := url.Parse(vf.Endpoint)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			ps = append(ps, problem(key+".endpoint", "%q is not a scheme and host such as https://%s", vf.Endpoint, defaultVendorHost[i]))
		} else {
			u.Path = ""
			o.Endpoint = u
			if u.Scheme == "http" && !Loopback(net.JoinHostPort(u.Hostname(), "80")) {
				c.Warnings = append(c.Warnings, fmt.Sprintf("%s.endpoint %s is plain http: the API token and the visitors' data would cross the network unencrypted", key, vf.Endpoint))
			}
		}
		if consentmode.Vendor(i) == consentmode.VendorMeta && !graphVersion.MatchString(vf.APIVersion) {
			ps = append(ps, problem(key+".api_version", "%q is not a Graph API version such as v25.0", vf.APIVersion))
		}
		if !vendorIDPattern.MatchString(vf.TestEventCode) && vf.TestEventCode != "" {
			ps = append(ps, problem(key+".test_event_code", "%q is not a test event code", vf.TestEventCode))
		}
		v.On[i] = o
	}
	if f.BatchMaxEvents < 1 || f.BatchMaxEvents > 1000 {
		ps = append(ps, problem("vendors.batch_max_events", "%d is not in [1, 1000] (1000 is the lowest limit of the three APIs)", f.BatchMaxEvents))
	}
	if f.EventIDParam != "" && !strings.HasPrefix(f.EventIDParam, "ep.") && !strings.HasPrefix(f.EventIDParam, "_") && !gaEventName.MatchString(f.EventIDParam) {
		ps = append(ps, problem("vendors.event_id_param", "%q is not a GA4 parameter name such as ep.event_id", f.EventIDParam))
	}
	v.Events = make(map[string]VendorEvent, len(f.Events))
	for i, e := range f.Events {
		key := fmt.Sprintf("vendors.events[%d]", i)
		if !gaEventName.MatchString(e.GA4) {
			ps = append(ps, problem(key+".ga4", "%q is not a GA4 event name", e.GA4))
			continue
		}
		if _, dup := v.Events[e.GA4]; dup {
			ps = append(ps, problem(key+".ga4", "%q is mapped twice", e.GA4))
			continue
		}
		ve := VendorEvent{Conversion: e.Conversion}
		ve.Name[consentmode.VendorMeta], ve.Name[consentmode.VendorMicrosoft], ve.Name[consentmode.VendorTikTok] = e.Meta, e.Microsoft, e.TikTok
		for j, n := range ve.Name {
			if n != "" && !vendorEventName.MatchString(n) {
				ps = append(ps, problem(key+"."+consentmode.Vendor(j).String(), "%q is not an event name (letters, digits, _ and spaces, at most 64)", n))
			}
		}
		v.Events[e.GA4] = ve
	}
	if v.Any() && len(v.Events) == 0 {
		c.Warnings = append(c.Warnings, "vendors: a vendor is enabled but vendors.events maps no GA4 event: nothing is sent to it")
	}
	return ps
}

var vendorEventName = regexp.MustCompile(`^[A-Za-z0-9_ ]{1,64}$`)

// graphVersion is a Graph API version such as v25.0.
var graphVersion = regexp.MustCompile(`^v[0-9]{1,3}\.[0-9]{1,2}$`)

var defaultVendorHost = [consentmode.NumVendors]string{"graph.facebook.com", "capi.uet.microsoft.com", "business-api.tiktok.com"}
