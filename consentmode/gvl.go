package consentmode

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
)

// gvlExcerpt is the part of the IAB TCF Global Vendor List the gateway
// needs: the list's version and the entries of the TCF vendors among
// Vendors, copied as published (gvl/README.md says from where and how to
// refresh it).
//
//go:embed gvl/gvl-excerpt.json
var gvlExcerpt []byte

// GVL is the vendored excerpt of the Global Vendor List.
type GVL struct {
	VendorListVersion int                  `json:"vendorListVersion"`
	TCFPolicyVersion  int                  `json:"tcfPolicyVersion"`
	LastUpdated       string               `json:"lastUpdated"`
	Source            string               `json:"source"`
	Vendors           map[string]GVLVendor `json:"vendors"`
}

// GVLVendor is one vendor's entry.
type GVLVendor struct {
	ID       int    `json:"id"`
	Name     string `json:"name"`
	Purposes []int  `json:"purposes"`
}

// vendorGVLName names the TCF vendors among Vendors as the list does;
// the others are not TCF vendors (Consent Mode alone decides for them).
var vendorGVLName = [NumVendors]string{VendorMicrosoft: "Microsoft Advertising"}

// VendorGVL is the vendored list, read at start.
var VendorGVL GVL

// vendorGVLID is the GVL id of each TCF vendor among Vendors (0: not a
// TCF vendor), found by name in the vendored list: never typed in.
var vendorGVLID [NumVendors]int

func init() {
	if err := json.Unmarshal(gvlExcerpt, &VendorGVL); err != nil {
		panic(fmt.Sprintf("consentmode: vendored GVL: %v", err))
	}
	for v, name := range vendorGVLName {
		if name == "" {
			continue
		}
		for _, e := range VendorGVL.Vendors {
			if e.Name == name {
				vendorGVLID[v] = e.ID
			}
		}
		if vendorGVLID[v] == 0 {
			panic("consentmode: vendored GVL has no vendor named " + name)
		}
		// VendorTCF asks for Purpose 1 consent: the vendor must declare it.
		if e := VendorGVL.Vendors[strconv.Itoa(vendorGVLID[v])]; !slices.Contains(e.Purposes, 1) {
			panic("consentmode: vendored GVL: " + name + " does not declare Purpose 1 under consent")
		}
	}
}

// VendorGVLID returns the GVL id of v, or 0 when v is not a TCF vendor.
func VendorGVLID(v Vendor) int {
	if int(v) < NumVendors {
		return vendorGVLID[v]
	}
	return 0
}
