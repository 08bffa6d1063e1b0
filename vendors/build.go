package vendors

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/consentgate/consentgate/consentmode"
)

// FieldSet is what a flag does to one vendor's events: the JSON paths
// it removes and the fields it sets. Paths are dotted from the event
// ("user_data.fbp").
type FieldSet struct {
	Remove []string
	Set    []Field
}

// Field is a JSON path and the value a flag sets there.
type Field struct {
	Path  string
	Value any
}

// Spec is how one vendor's API payload is shaped, as far as consent
// enforcement needs to know: where the event name, the user object and
// the URLs are, and what each flag removes or sets. It is data, so
// docs/vendors.md can print it; the builder and Forward both run it.
type Spec struct {
	// EventName is the path of the vendor event name.
	EventName string
	// User is the path of the user object; UserKeys are the keys it may
	// hold (any other key is removed: it could carry user data).
	User     string
	UserKeys []string
	// URLs are the paths of URLs that leave: e-mail addresses are
	// redacted in them and, under FlagNoIDs, click ids removed.
	URLs []string
	// Flags[i] is what flag 1<<i does.
	Flags [consentmode.NumVendorFlags]FieldSet
	// Top are the top-level keys a merchant payload may carry (Forward);
	// the others are removed. Auth is set by the gateway.
	Top []string
	// MaxEvents is the API's limit of events in one call.
	MaxEvents int
	// Required are the paths a built event must have: the API rejects
	// the whole call for one event without them, so the builder drops
	// such an event (counted as cause "incomplete").
	Required []string
}

// flagIndex returns the index of a single flag in Spec.Flags.
func flagIndex(f consentmode.VendorFlags) int {
	for i := 0; i < len(Spec{}.Flags); i++ {
		if f == 1<<i {
			return i
		}
	}
	panic("vendors: not a single flag")
}

func flagSets(m map[consentmode.VendorFlags]FieldSet) [consentmode.NumVendorFlags]FieldSet {
	var out [consentmode.NumVendorFlags]FieldSet
	for f, s := range m {
		out[flagIndex(f)] = s
	}
	return out
}

// Specs are the vendors' payload shapes (field names per the vendors'
// documentation; vendors/testdata/schema holds them with sources).
var Specs = [consentmode.NumVendors]Spec{
	consentmode.VendorMeta: {
		EventName: "event_name",
		User:      "user_data",
		UserKeys:  []string{"em", "ph", "fn", "ln", "db", "ge", "ct", "st", "zp", "country", "external_id", "client_ip_address", "client_user_agent", "fbc", "fbp", "subscription_id", "fb_login_id"},
		URLs:      []string{"event_source_url", "referrer_url"},
		Flags: flagSets(map[consentmode.VendorFlags]FieldSet{
			consentmode.FlagNoIDs:      {Remove: []string{"user_data.fbc", "user_data.fbp", "user_data.subscription_id", "user_data.fb_login_id"}},
			consentmode.FlagNoUserData: {Remove: []string{"user_data.em", "user_data.ph", "user_data.fn", "user_data.ln", "user_data.db", "user_data.ge", "user_data.ct", "user_data.st", "user_data.zp", "user_data.country", "user_data.external_id", "user_data.client_ip_address"}},
			consentmode.FlagOptOut:     {Set: []Field{{"opt_out", true}}},
			consentmode.FlagLDU:        {Set: []Field{{"data_processing_options", []any{"LDU"}}, {"data_processing_options_country", 0}, {"data_processing_options_state", 0}}},
		}),
		Top:       []string{"data", "test_event_code", "partner_agent"},
		MaxEvents: 1000,
		Required:  []string{"event_name", "event_time", "action_source", "event_source_url", "user_data.client_user_agent"},
	},
	consentmode.VendorMicrosoft: {
		EventName: "eventName",
		User:      "userData",
		UserKeys:  []string{"em", "ph", "externalId", "anonymousId", "msclkid", "clientIpAddress", "clientUserAgent", "idfa", "gaid"},
		URLs:      []string{"eventSourceUrl", "referrerUrl"},
		Flags: flagSets(map[consentmode.VendorFlags]FieldSet{
			consentmode.FlagNoIDs:      {Remove: []string{"userData.msclkid", "userData.anonymousId", "userData.idfa", "userData.gaid"}, Set: []Field{{"adStorageConsent", "D"}}},
			consentmode.FlagNoUserData: {Remove: []string{"userData.em", "userData.ph", "userData.externalId", "userData.clientIpAddress"}},
		}),
		Top:       []string{"data", "dataProvider", "continueOnValidationError"},
		MaxEvents: 1000,
		Required:  []string{"eventType", "eventTime", "userData"},
	},
	consentmode.VendorTikTok: {
		EventName: "event",
		User:      "user",
		UserKeys:  []string{"email", "phone", "external_id", "ttclid", "ttp", "ip", "user_agent", "locale", "first_name", "last_name", "city", "state", "country", "zip_code"},
		URLs:      []string{"page.url", "page.referrer"},
		Flags: flagSets(map[consentmode.VendorFlags]FieldSet{
			consentmode.FlagNoIDs:      {Remove: []string{"user.ttclid", "user.ttp"}},
			consentmode.FlagNoUserData: {Remove: []string{"user.email", "user.phone", "user.external_id", "user.first_name", "user.last_name", "user.city", "user.state", "user.country", "user.zip_code", "user.ip"}},
			consentmode.FlagLDU:        {Set: []Field{{"limited_data_use", true}}},
		}),
		Top:       []string{"event_source", "event_source_id", "data", "test_event_code", "partner_name"},
		MaxEvents: 1000,
		Required:  []string{"event", "event_time"},
	},
}

// FlagRow is one line of the per-vendor flag table docs/vendors.md
// prints: what a flag removes from and sets in a vendor's events.
type FlagRow struct {
	Vendor string
	Flag   string
	Remove []string
	Set    []string
}

// FlagTable returns Specs' flag effects, vendor by vendor, flag by flag;
// flags that do nothing to a vendor are left out.
func FlagTable() []FlagRow {
	var out []FlagRow
	names := consentmode.VendorFlagNames()
	for v := range consentmode.Vendor(consentmode.NumVendors) {
		for i, fs := range Specs[v].Flags {
			if len(fs.Remove) == 0 && len(fs.Set) == 0 {
				continue
			}
			r := FlagRow{Vendor: v.String(), Flag: names[i], Remove: fs.Remove}
			for _, f := range fs.Set {
				b, _ := json.Marshal(f.Value)
				r.Set = append(r.Set, f.Path+"="+string(b))
			}
			out = append(out, r)
		}
	}
	return out
}

// lookup returns the parent object of a dotted path and its last key;
// nil when a step is missing or not an object. With create, missing
// objects are made.
func lookup(ev map[string]any, path string, create bool) (map[string]any, string) {
	cur := ev
	for {
		k, rest, more := strings.Cut(path, ".")
		if !more {
			return cur, k
		}
		next, ok := cur[k].(map[string]any)
		if !ok {
			if !create {
				return nil, ""
			}
			next = map[string]any{}
			cur[k] = next
		}
		cur, path = next, rest
	}
}

// eventName returns the vendor event name of ev.
func (s *Spec) eventName(ev map[string]any) string {
	o, k := lookup(ev, s.EventName, false)
	if o == nil {
		return ""
	}
	n, _ := o[k].(string)
	return n
}

// apply enforces call c's flags on one event: the one code path for
// built and forwarded events. It returns false when the event must not
// leave (FlagConversionsOnly and not a conversion). w redacts e-mail
// addresses in URLs.
func (g *Gateway) apply(v consentmode.Vendor, c consentmode.VendorCall, ev map[string]any, w *consentmode.Work) bool {
	s := &Specs[v]
	if c.Flags.Has(consentmode.FlagConversionsOnly) && !g.conv[v][s.eventName(ev)] {
		return false
	}
	if u, k := lookup(ev, s.User, false); u != nil {
		if obj, ok := u[k].(map[string]any); ok {
			for key := range obj {
				if !contains(s.UserKeys, key) {
					delete(obj, key)
				}
			}
		} else if u[k] != nil {
			delete(u, k) // not an object: nothing of it leaves
		}
	}
	for i := range s.Flags {
		if !c.Flags.Has(consentmode.VendorFlags(1 << i)) {
			continue
		}
		for _, p := range s.Flags[i].Remove {
			if o, k := lookup(ev, p, false); o != nil {
				delete(o, k)
			}
		}
		for _, f := range s.Flags[i].Set {
			o, k := lookup(ev, f.Path, true)
			o[k] = f.Value
		}
	}
	for _, p := range s.URLs {
		o, k := lookup(ev, p, false)
		if o == nil {
			continue
		}
		u, ok := o[k].(string)
		if !ok {
			delete(o, k)
			continue
		}
		if c.Flags.Has(consentmode.FlagNoIDs) {
			u = stripClickIDs(u)
		}
		o[k] = u
	}
	if v == consentmode.VendorMicrosoft {
		// Microsoft needs the consent signal on every event (EEA, UK and
		// CH traffic since 2025-05-05): a merchant's event without one
		// gets the state the flags left, granted unless no_ids set "D".
		if _, ok := ev["adStorageConsent"]; !ok {
			ev["adStorageConsent"] = "G"
		}
	}
	redactEmails(ev, w)
	return true
}

// redactEmails redacts e-mail addresses from every string of v (a decoded
// JSON value), as consentmode does from every value Google gets: page
// URLs, titles, item names, the user agent and whatever a merchant's
// payload carries.
func redactEmails(v any, w *consentmode.Work) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok {
				if r, found := w.RedactEmails(nil, []byte(s)); found {
					x[k] = string(r)
				}
				continue
			}
			redactEmails(e, w)
		}
	case []any:
		for i, e := range x {
			if s, ok := e.(string); ok {
				if r, found := w.RedactEmails(nil, []byte(s)); found {
					x[i] = string(r)
				}
				continue
			}
			redactEmails(e, w)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// hitIDs are the identifiers of a hit, read from its cookies and page URL.
type hitIDs struct {
	fbp, fbc        string
	msclkid, uetvid string
	ttp             string
	ip, ua          string
	atSec, atMs     int64
}

func idsOf(h *Hit) hitIDs {
	ids := hitIDs{
		fbp:    cookie(h.Cookie, "_fbp"),
		fbc:    cookie(h.Cookie, "_fbc"),
		uetvid: cookie(h.Cookie, "_uetvid"),
		ttp:    cookie(h.Cookie, "_ttp"),
		ua:     string(h.UserAgent),
		atSec:  h.At.Unix(),
		atMs:   h.At.UnixMilli(),
	}
	if m := cookie(h.Cookie, "_uetmsclkid"); strings.HasPrefix(m, "_uet") {
		ids.msclkid = m[len("_uet"):]
	}
	if h.ClientIP.IsValid() {
		ids.ip = h.ClientIP.String()
	}
	return ids
}

// fields are the values of one GA4 event the vendor payloads use.
type fields struct {
	ga4, id, url, referrer, title, currency, txn string
	extID, em, ph                                string
	value                                        float64
	hasValue                                     bool
	items                                        []item
	fbclid, msclkid, ttclid                      string
}

func (g *Gateway) fieldsOf(e ga4Event) fields {
	f := fields{
		ga4:      e.get("en"),
		url:      e.get("dl"),
		referrer: e.get("dr"),
		title:    e.get("dt"),
		currency: e.get("cu"),
		txn:      e.get("ep.transaction_id"),
		items:    e.items(),
	}
	if g.cfg.EventIDParam != "" {
		f.id = e.get(g.cfg.EventIDParam)
	}
	if f.currency == "" {
		f.currency = e.get("ep.currency")
	}
	for _, k := range [...]string{"epn.value", "ep.value"} {
		if s := e.get(k); s != "" {
			if x, err := strconv.ParseFloat(s, 64); err == nil {
				f.value, f.hasValue = x, true
				break
			}
		}
	}
	if uid := e.get("uid"); uid != "" && strings.IndexByte(uid, '@') < 0 {
		f.extID = sha256Hex(uid)
	}
	f.em, f.ph = userHashes(e.get("em"))
	f.fbclid = urlParam(f.url, "fbclid")
	f.msclkid = urlParam(f.url, "msclkid")
	f.ttclid = urlParam(f.url, "ttclid")
	return f
}

// event returns vendor v's event for GA4 event f with everything the hit
// has: apply then takes out what the consent state does not allow.
func (g *Gateway) event(v consentmode.Vendor, name string, f *fields, ids *hitIDs) map[string]any {
	switch v {
	case consentmode.VendorMeta:
		u := map[string]any{}
		put(u, "client_user_agent", ids.ua)
		put(u, "client_ip_address", ids.ip)
		put(u, "fbp", ids.fbp)
		switch {
		case ids.fbc != "":
			u["fbc"] = ids.fbc
		case f.fbclid != "":
			u["fbc"] = "fb.1." + strconv.FormatInt(ids.atMs, 10) + "." + f.fbclid
		}
		putList(u, "em", f.em)
		// No ph: Google hashes the phone in E.164 with its '+', Meta
		// hashes the digits alone, so Google's hash never matches and
		// would leave for nothing.
		putList(u, "external_id", f.extID)
		cd := map[string]any{}
		if f.hasValue {
			cd["value"] = f.value
		}
		put(cd, "currency", f.currency)
		put(cd, "order_id", f.txn)
		if len(f.items) > 0 {
			n := 0
			for _, it := range f.items {
				n += max(it.Qty, 1)
			}
			cd["content_ids"], cd["contents"], cd["num_items"], cd["content_type"] = itemIDs(f.items), itemList(f.items, itemKeys{"id", "", "item_price", "quantity"}), n, "product"
		}
		ev := map[string]any{"event_name": name, "event_time": ids.atSec, "action_source": "website", "user_data": u}
		put(ev, "event_id", f.id)
		put(ev, "event_source_url", f.url)
		put(ev, "referrer_url", f.referrer)
		if len(cd) > 0 {
			ev["custom_data"] = cd
		}
		return ev
	case consentmode.VendorMicrosoft:
		u := map[string]any{}
		put(u, "clientUserAgent", ids.ua)
		put(u, "clientIpAddress", ids.ip)
		put(u, "anonymousId", ids.uetvid)
		if f.msclkid != "" {
			u["msclkid"] = f.msclkid
		} else {
			put(u, "msclkid", ids.msclkid)
		}
		put(u, "em", f.em)
		put(u, "ph", f.ph)
		put(u, "externalId", f.extID)
		cd := map[string]any{}
		if f.hasValue {
			cd["value"] = f.value
		}
		put(cd, "currency", f.currency)
		put(cd, "transactionId", f.txn)
		if len(f.items) > 0 {
			cd["itemIds"], cd["items"] = itemIDs(f.items), itemList(f.items, itemKeys{"id", "name", "price", "quantity"})
		}
		ev := map[string]any{"eventType": "custom", "eventName": name, "eventTime": ids.atSec, "adStorageConsent": "G", "userData": u}
		put(ev, "eventId", f.id)
		put(ev, "eventSourceUrl", f.url)
		put(ev, "referrerUrl", f.referrer)
		put(ev, "pageTitle", f.title)
		if len(cd) > 0 {
			ev["customData"] = cd
		}
		return ev
	default: // TikTok
		u := map[string]any{}
		put(u, "user_agent", ids.ua)
		put(u, "ip", ids.ip)
		put(u, "ttp", ids.ttp)
		put(u, "ttclid", f.ttclid)
		put(u, "email", f.em)
		put(u, "phone", f.ph)
		put(u, "external_id", f.extID)
		p := map[string]any{}
		if f.hasValue {
			p["value"] = f.value
		}
		put(p, "currency", f.currency)
		put(p, "order_id", f.txn)
		if len(f.items) > 0 {
			p["contents"], p["content_type"] = itemList(f.items, itemKeys{"content_id", "content_name", "price", "quantity"}), "product"
		}
		ev := map[string]any{"event": name, "event_time": ids.atSec, "user": u}
		put(ev, "event_id", f.id)
		page := map[string]any{}
		put(page, "url", f.url)
		put(page, "referrer", f.referrer)
		if len(page) > 0 {
			ev["page"] = page
		}
		if len(p) > 0 {
			ev["properties"] = p
		}
		return ev
	}
}

// itemKeys name an item's fields in one vendor's payload ("" leaves the
// field out).
type itemKeys struct{ id, name, price, qty string }

// itemList is the hit's items as vendor objects: the id always, the
// name, price and quantity when the hit has them.
func itemList(items []item, k itemKeys) []any {
	out := make([]any, 0, len(items))
	for _, it := range items {
		c := map[string]any{k.id: it.ID}
		if k.name != "" {
			put(c, k.name, it.Name)
		}
		if it.HasPrice {
			c[k.price] = it.Price
		}
		if it.Qty > 0 {
			c[k.qty] = it.Qty
		}
		out = append(out, c)
	}
	return out
}

// itemIDs is the ids of the hit's items.
func itemIDs(items []item) []any {
	out := make([]any, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}

func put(m map[string]any, k, v string) {
	if v != "" {
		m[k] = v
	}
}

func putList(m map[string]any, k, v string) {
	if v != "" {
		m[k] = []any{v}
	}
}

// complete reports whether ev has every path of s.Required.
func (s *Spec) complete(ev map[string]any) bool {
	for _, p := range s.Required {
		o, k := lookup(ev, p, false)
		if o == nil {
			return false
		}
		if _, ok := o[k]; !ok {
			return false
		}
	}
	return true
}

// built is one vendor's events of a hit, and what happened to the others.
type built struct {
	events                       []any
	dropped, blocked, incomplete int
}

// build returns each vendor's events of hit h under plan p, flags
// applied: the one code path of the builder goroutine and Preview.
func (g *Gateway) build(p *Plan, h *Hit, w *consentmode.Work) [consentmode.NumVendors]built {
	var out [consentmode.NumVendors]built
	ids := idsOf(h)
	for _, e := range events(h.Query, h.Body) {
		var f *fields
		name := e.get("en")
		m, ok := g.cfg.Events[name]
		if !ok {
			continue
		}
		for v := range consentmode.Vendor(consentmode.NumVendors) {
			c := p.Calls[v]
			if c.Action == consentmode.VendorNone || g.cfg.On[v] == nil || m.Name[v] == "" {
				continue
			}
			if c.Action == consentmode.VendorBlock {
				out[v].blocked++
				continue
			}
			if f == nil {
				x := g.fieldsOf(e)
				f = &x
			}
			ev := g.event(v, m.Name[v], f, &ids)
			if !g.apply(v, c, ev, w) {
				out[v].dropped++
				continue
			}
			if !Specs[v].complete(ev) {
				out[v].incomplete++
				continue
			}
			out[v].events = append(out[v].events, ev)
		}
	}
	return out
}

// redacted replaces the token in Preview's calls.
const redacted = "REDACTED"

// request is one vendor API call ready for the sink.
type request struct {
	path    string
	headers [][2]string
	body    []byte
}

// request encodes events for vendor v; top holds a merchant payload's
// top-level fields (nil for built calls). With redact the token is
// replaced by "REDACTED".
func (g *Gateway) request(v consentmode.Vendor, top map[string]any, events []any, redact bool) (request, error) {
	o := g.cfg.On[v]
	token := o.Token
	if redact {
		token = redacted
	}
	body := map[string]any{}
	for k, x := range top {
		if contains(Specs[v].Top, k) {
			body[k] = x
		}
	}
	body["data"] = events
	var r request
	r.headers = append(r.headers, [2]string{"Content-Type", "application/json"})
	switch v {
	case consentmode.VendorMeta:
		r.path = "/" + o.APIVersion + "/" + o.ID + "/events"
		body["access_token"] = token // in the body, not in a URL
		if o.TestEventCode != "" {
			body["test_event_code"] = o.TestEventCode
		}
	case consentmode.VendorMicrosoft:
		r.path = "/v1/" + o.ID + "/events"
		r.headers = append(r.headers, [2]string{"Authorization", "Bearer " + token})
	case consentmode.VendorTikTok:
		r.path = "/open_api/v1.3/event/track/"
		r.headers = append(r.headers, [2]string{"Access-Token", token})
		if _, ok := body["event_source"]; !ok {
			body["event_source"] = "web"
		}
		body["event_source_id"] = o.ID
		if o.TestEventCode != "" {
			body["test_event_code"] = o.TestEventCode
		}
	}
	var buf bytes.Buffer
	e := json.NewEncoder(&buf)
	e.SetEscapeHTML(false)
	err := e.Encode(body)
	r.body = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	return r, err
}
