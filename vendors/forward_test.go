package vendors

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/consentmode"
)

// A merchant's own Meta payload, with every kind of field the flags act
// on, an unknown user_data key, a URL with click ids and an e-mail, and
// its own token.
const metaPayload = `{"access_token":"merchant-token","test_event_code":"TEST1","unknown_top":"x","data":[{
 "event_name":"Purchase","event_time":1765100000,"event_id":"o-1","action_source":"physical_store",
 "event_source_url":"https://shop.example/done?fbclid=F1&mail=jane.doe@example.com&x=1",
 "user_data":{"em":["bc4795ee8be72a7a92a83a67b1ad3de72cc8013906871a9edab60efb93e20fe8"],"ph":["aa"],"fn":["bb"],"external_id":["cc"],
  "client_ip_address":"203.0.113.7","client_user_agent":"UA/1","fbc":"fb.1.1.F1","fbp":"fb.1.2.3","favourite_colour":"blue"},
 "custom_data":{"value":10.5,"currency":"EUR"}}]}`

const tiktokPayload = `{"event_source":"web","event_source_id":"merchant-pixel","data":[
 {"event":"CompletePayment","event_time":1765100000,"event_id":"o-1","user":{"email":"e","phone":"p","ip":"203.0.113.7","user_agent":"UA/1","ttclid":"T1","ttp":"P1"},"page":{"url":"https://shop.example/?ttclid=T1"}},
 {"event":"ViewContent","event_time":1765100000,"event_id":"o-2","user":{"user_agent":"UA/1"}}]}`

const msPayload = `{"data":[{"eventType":"custom","eventName":"purchase","eventTime":1765100000,"adStorageConsent":"G",
 "userData":{"em":"e","externalId":"x","anonymousId":"a","msclkid":"M1","clientIpAddress":"203.0.113.7","clientUserAgent":"UA/1"},
 "eventSourceUrl":"https://shop.example/?msclkid=M1"}]}`

func forwardGateway(t *testing.T) (*Gateway, func(consentmode.Vendor) []map[string]any, func(consentmode.Vendor) map[string]any) {
	t.Helper()
	fake := startFake(t)
	g, err := New(Options{Config: testConfig(t, fake.URL), Sink: func(consentmode.Vendor, string, string) (Sink, error) {
		return &httpSink{base: fake.URL}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.Close()
		if v := fake.Violations(); len(v) > 0 {
			t.Errorf("schema violations: %v", v)
		}
	})
	top := func(v consentmode.Vendor) map[string]any {
		rs := fake.Received(v)
		if len(rs) != 1 {
			t.Fatalf("%s got %d calls, want 1", v, len(rs))
		}
		var m map[string]any
		if err := json.Unmarshal(rs[0].Body, &m); err != nil {
			t.Fatal(err)
		}
		m["_auth"] = rs[0].Header.Get("Authorization") + rs[0].Header.Get("Access-Token")
		return m
	}
	return g, fake.Events, top
}

func send(f consentmode.VendorFlags) consentmode.VendorCall {
	return consentmode.VendorCall{Action: consentmode.VendorSend, Flags: f, Rule: -1}
}

func has(ev map[string]any, path string) bool {
	o, k := lookup(ev, path, false)
	if o == nil {
		return false
	}
	_, ok := o[k]
	return ok
}

// TestForwardFlags applies each flag to a merchant's Meta payload and
// checks what the fake API received.
func TestForwardFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		flags       consentmode.VendorFlags
		gone, there []string
		set         map[string]any
	}{
		{"no flag", 0, []string{"user_data.favourite_colour"}, []string{"user_data.em", "user_data.fbc", "user_data.fbp", "user_data.client_ip_address"}, nil},
		{"no ids", consentmode.FlagNoIDs, []string{"user_data.fbc", "user_data.fbp"}, []string{"user_data.em", "user_data.client_ip_address"}, nil},
		{"no user data", consentmode.FlagNoUserData, []string{"user_data.em", "user_data.ph", "user_data.fn", "user_data.external_id", "user_data.client_ip_address"}, []string{"user_data.fbp", "user_data.client_user_agent"}, nil},
		{"opt out", consentmode.FlagOptOut, nil, []string{"user_data.em"}, map[string]any{"opt_out": true}},
		{"LDU", consentmode.FlagLDU, nil, nil, map[string]any{"data_processing_options_country": 0, "data_processing_options_state": 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g, events, top := forwardGateway(t)
			n, err := g.Forward(consentmode.VendorMeta, send(tc.flags), []byte(metaPayload), time.Now())
			if err != nil || n != 1 {
				t.Fatalf("Forward = %d, %v", n, err)
			}
			g.Close()
			ev := events(consentmode.VendorMeta)[0]
			for _, p := range tc.gone {
				if has(ev, p) {
					t.Errorf("%s left", p)
				}
			}
			for _, p := range tc.there {
				if !has(ev, p) {
					t.Errorf("%s is missing", p)
				}
			}
			for k, v := range tc.set {
				if fmt.Sprint(ev[k]) != fmt.Sprint(v) {
					t.Errorf("%s = %v, want %v", k, ev[k], v)
				}
			}
			if tc.flags.Has(consentmode.FlagLDU) && strings.Join(strings.Fields(toJSON(ev["data_processing_options"])), "") != `["LDU"]` {
				t.Errorf("data_processing_options = %v", ev["data_processing_options"])
			}
			if ev["action_source"] != "physical_store" {
				t.Errorf("action_source = %v, want the merchant's", ev["action_source"])
			}
			u := ev["event_source_url"].(string)
			if strings.Contains(u, "example.com") || !strings.Contains(u, "mail=[redacted]") {
				t.Errorf("event_source_url keeps an e-mail: %s", u)
			}
			if strings.Contains(u, "fbclid") == tc.flags.Has(consentmode.FlagNoIDs) {
				t.Errorf("event_source_url %s under %v", u, tc.flags)
			}
			m := top(consentmode.VendorMeta)
			if m["access_token"] != metaToken || m["unknown_top"] != nil || m["test_event_code"] != "TEST1" {
				t.Errorf("top level: token %v, unknown_top %v, test_event_code %v", m["access_token"], m["unknown_top"], m["test_event_code"])
			}
		})
	}
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestForwardOthers: TikTok under conversions-only and LDU keeps the
// conversion only, with the gateway's pixel and token; Microsoft under
// no-ids gets adStorageConsent "D" without its ids.
func TestForwardOthers(t *testing.T) {
	t.Parallel()
	g, events, top := forwardGateway(t)
	n, err := g.Forward(consentmode.VendorTikTok, send(consentmode.FlagConversionsOnly|consentmode.FlagLDU|consentmode.FlagNoIDs), []byte(tiktokPayload), time.Now())
	if err != nil || n != 1 {
		t.Fatalf("TikTok Forward = %d, %v, want 1 event", n, err)
	}
	n, err = g.Forward(consentmode.VendorMicrosoft, send(consentmode.FlagNoIDs|consentmode.FlagNoUserData), []byte(msPayload), time.Now())
	if err != nil || n != 1 {
		t.Fatalf("Microsoft Forward = %d, %v", n, err)
	}
	g.Close()
	tt := events(consentmode.VendorTikTok)
	if len(tt) != 1 || tt[0]["event"] != "CompletePayment" || tt[0]["limited_data_use"] != true || has(tt[0], "user.ttclid") || has(tt[0], "user.ttp") {
		t.Errorf("TikTok got %v", tt)
	}
	if u := tt[0]["page"].(map[string]any)["url"]; u != "https://shop.example/" {
		t.Errorf("TikTok page url %v", u)
	}
	if m := top(consentmode.VendorTikTok); m["event_source_id"] != "CTTPIXEL123" || m["_auth"] != ttToken {
		t.Errorf("TikTok pixel %v, auth %v", m["event_source_id"], m["_auth"])
	}
	ms := events(consentmode.VendorMicrosoft)
	if len(ms) != 1 || ms[0]["adStorageConsent"] != "D" {
		t.Fatalf("Microsoft got %v", ms)
	}
	for _, p := range []string{"userData.msclkid", "userData.anonymousId", "userData.em", "userData.externalId", "userData.clientIpAddress"} {
		if has(ms[0], p) {
			t.Errorf("Microsoft got %s", p)
		}
	}
	if m := top(consentmode.VendorMicrosoft); m["_auth"] != "Bearer "+msToken {
		t.Errorf("Microsoft auth %v", m["_auth"])
	}
}

func TestForwardRefuses(t *testing.T) {
	t.Parallel()
	g, events, _ := forwardGateway(t)
	block := consentmode.VendorCall{Action: consentmode.VendorBlock, Rule: 0}
	if n, err := g.Forward(consentmode.VendorMeta, block, []byte(metaPayload), time.Now()); n != 0 || err != nil {
		t.Errorf("block: %d, %v", n, err)
	}
	many := `{"data":[` + strings.Repeat(`{"event_name":"Purchase"},`, 1000) + `{"event_name":"Purchase"}]}`
	for _, tc := range []struct {
		name, payload string
		want          error
	}{
		{"not JSON", `{"data":[`, ErrPayload},
		{"not an object", `[1,2]`, ErrPayload},
		{"no data", `{"x":1}`, ErrPayload},
		{"empty data", `{"data":[]}`, ErrPayload},
		{"event not an object", `{"data":[1]}`, ErrPayload},
		{"trailing data", `{"data":[{}]} {}`, ErrPayload},
		{"too many events", many, ErrTooMany},
		{"too many events is a payload error", many, ErrPayload},
	} {
		if _, err := g.Forward(consentmode.VendorMeta, send(0), []byte(tc.payload), time.Now()); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	g.Close()
	if e := events(consentmode.VendorMeta); len(e) != 0 {
		t.Errorf("Meta got %d events", len(e))
	}
}
