package main

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/consentgate/consentgate/consentmode"
	"github.com/consentgate/consentgate/declog"
	"github.com/consentgate/consentgate/proxy"
)

// The vendor invariants restate docs/vendors.md's promises directly, apart
// from consentmode.VendorRules and the vendors package's field tables, and
// check them on the calls an explanation would send (their bodies as
// built by the code that sends them).

// vendorUserData are the keys of user data in the three APIs' payloads:
// hashed e-mail, phone, external id, name and address fields, client IP.
var vendorUserData = []string{
	"em", "ph", "external_id", "externalId", "fn", "ln", "ge", "db", "ct", "st", "zp", "country",
	"client_ip_address", "clientIpAddress", "email", "phone", "ip", "first_name", "last_name", "city", "state", "zip_code",
}

// vendorIDs are the keys of cookie and click ids.
var vendorIDs = []string{"fbc", "fbp", "msclkid", "anonymousId", "ttclid", "ttp"}

// checkVendorInvariants checks e's vendor calls against the consent e
// enforces.
func checkVendorInvariants(e *proxy.Explanation) []violation {
	var vs []violation
	add := func(inv, format string, args ...any) {
		vs = append(vs, violation{inv, fmt.Sprintf(format, args...)})
	}
	st := &e.Decision.Consent
	for _, c := range e.VendorCalls {
		var body any
		if err := json.Unmarshal(c.Body, &body); err != nil {
			add("vendor_call_json", "%s: the body is not JSON: %v", c.Vendor, err)
			continue
		}
		keys := map[string]any{}
		collectKeys(body, keys)
		if !st.Granted(consentmode.AdStorage) {
			switch c.Vendor {
			case "meta", "tiktok":
				add("vendor_ad_storage_denied", "%s would get a call although ad_storage is denied", c.Vendor)
			case "microsoft":
				if keys["adStorageConsent"] != "D" {
					add("vendor_ad_storage_denied", "microsoft: adStorageConsent is %v, not \"D\", although ad_storage is denied", keys["adStorageConsent"])
				}
			}
			for _, k := range vendorIDs {
				if _, ok := keys[k]; ok {
					add("vendor_ad_storage_denied", "%s: %s would leave although ad_storage is denied", c.Vendor, k)
				}
			}
		}
		if !st.Granted(consentmode.AdUserData) {
			for _, k := range vendorUserData {
				if _, ok := keys[k]; ok {
					add("vendor_ad_user_data_denied", "%s: %s would leave although ad_user_data is denied", c.Vendor, k)
				}
			}
		}
		if !st.Granted(consentmode.AdPersonalization) && c.Vendor == "meta" && keys["opt_out"] != true {
			add("vendor_ad_personalization_denied", "meta: opt_out is not true although ad_personalization is denied")
		}
		if e.Decision.Reasons.Has(consentmode.ReasonUSOptOut) {
			switch c.Vendor {
			case "meta":
				if dpo, _ := keys["data_processing_options"].([]any); !slices.Contains(dpo, any("LDU")) {
					add("vendor_us_opt_out", "meta: no data_processing_options [\"LDU\"] after a US opt-out")
				}
			case "tiktok":
				if keys["limited_data_use"] != true {
					add("vendor_us_opt_out", "tiktok: limited_data_use is not true after a US opt-out")
				}
			}
		}
	}
	return vs
}

// collectKeys records every object key below v with the last value seen
// for it (the calls' events share their flags, so any event's value
// speaks for all when they agree; a disagreement shows as the last).
func collectKeys(v any, keys map[string]any) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if prev, seen := keys[k]; seen && fmt.Sprint(prev) != fmt.Sprint(val) {
				// Two events disagree: keep a value no check accepts.
				val = fmt.Sprintf("%v|%v", prev, val)
			}
			keys[k] = val
			collectKeys(val, keys)
		}
	case []any:
		for _, e := range x {
			collectKeys(e, keys)
		}
	}
}

// checkLoggedVendors re-decides a decision-log record's vendor calls from
// what it recorded (declog.Record.VendorFacts) with the mapping the
// gateway runs, and reports each that differs from the logged one.
func checkLoggedVendors(r *declog.Record) []violation {
	if r.Vendors.IsZero() {
		return nil
	}
	f := r.VendorFacts()
	want := consentmode.DecideVendors(&f)
	var vs []violation
	for v, got := range r.Vendors {
		if got != "" && got != declog.VendorCallName(want[v]) {
			vs = append(vs, violation{"vendor_mapping", fmt.Sprintf("%s: logged %q, the recorded consent gives %q", consentmode.Vendor(v), got, declog.VendorCallName(want[v]))})
		}
	}
	return vs
}
