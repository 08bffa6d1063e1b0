package consentmode

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseUSPrivacy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		give         string
		want         USPrivacy
		wantApplies  bool
		wantOptedOut bool
	}{
		{name: "opted out", give: "1YYN", want: USPrivacy{1, 'Y', 'Y', 'N'}, wantApplies: true, wantOptedOut: true},
		{name: "not opted out", give: "1YNN", want: USPrivacy{1, 'Y', 'N', 'N'}, wantApplies: true},
		{name: "not applicable", give: "1---", want: USPrivacy{1, '-', '-', '-'}},
		{name: "only opt-out set", give: "1-Y-", want: USPrivacy{1, '-', 'Y', '-'}, wantApplies: true, wantOptedOut: true},
		{name: "LSPA only", give: "1--Y", want: USPrivacy{1, '-', '-', 'Y'}, wantApplies: true},
		{name: "lower case", give: "1yyn", want: USPrivacy{1, 'Y', 'Y', 'N'}, wantApplies: true, wantOptedOut: true},
		{name: "mixed case", give: "1nYn", want: USPrivacy{1, 'N', 'Y', 'N'}, wantApplies: true, wantOptedOut: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseUSPrivacy([]byte(tt.give))
			if err != nil {
				t.Fatalf("ParseUSPrivacy(%q): %v", tt.give, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseUSPrivacy(%q) mismatch (-want +got):\n%s", tt.give, diff)
			}
			if got.Applies() != tt.wantApplies || got.OptedOut() != tt.wantOptedOut {
				t.Errorf("Applies, OptedOut = %v, %v; want %v, %v", got.Applies(), got.OptedOut(), tt.wantApplies, tt.wantOptedOut)
			}
		})
	}
}

func TestParseUSPrivacyMalformed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		give string
	}{
		{name: "empty", give: ""},
		{name: "version 2", give: "2YNN"},
		{name: "version 0", give: "0YNN"},
		{name: "too short", give: "1YN"},
		{name: "too long", give: "1YNNN"},
		{name: "unknown flag", give: "1YXN"},
		{name: "digit flag", give: "11NN"},
		{name: "space", give: "1Y N"},
		{name: "escaped dash", give: "1%2D"},
		{name: "non-ascii", give: "1Y\xffN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseUSPrivacy([]byte(tt.give))
			if !errors.Is(err, ErrMalformedUSPrivacy) || got != (USPrivacy{}) {
				t.Errorf("ParseUSPrivacy(%q) = %+v, %v; want zero, ErrMalformedUSPrivacy", tt.give, got, err)
			}
		})
	}
}

func TestUSPrivacyString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		give USPrivacy
		want string
	}{
		{name: "zero", give: USPrivacy{}, want: ""},
		{name: "parsed", give: USPrivacy{1, 'Y', 'N', '-'}, want: "1YN-"},
	}
	for _, tt := range tests {
		if got := tt.give.String(); got != tt.want {
			t.Errorf("%s: String() = %q, want %q", tt.name, got, tt.want)
		}
	}
}
