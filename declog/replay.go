package declog

import (
	"errors"
	"strings"

	"github.com/consentgate/consentgate/consentmode"
)

// ErrNotReplayable is Replay's error for a record that cannot be decided
// again: it holds no inputs (written before they were logged, or a
// Measurement Protocol hit, whose consent is in its body), or names an
// unknown route.
var ErrNotReplayable = errors.New("declog: the record holds no inputs to decide it again")

// ReplayDay is the day Replay's hits are decided on. The day keys only the
// ephemeral ids, which are never logged.
const ReplayDay = 20000

// Replay rebuilds, from r, a hit that Decide decides as it decided the
// logged one as far as the record allows: the route, the region, the
// consent inputs with their values, the GPC signal, and every parameter
// and cookie of the rule catalogue the hit carried, with a placeholder
// value ("1"). Values the log never holds do not take part: the CMP's
// cookies other than euconsent-v2 (they can carry a consent id), e-mail
// addresses in values, GA4 batch lines in a body. The result does not
// refer to r.
func Replay(r *Record) (consentmode.Input, error) {
	ri := -1
	for i := range consentmode.Routes {
		if consentmode.Routes[i].Name == r.Route {
			ri = i
		}
	}
	if ri < 0 || r.Inputs == nil {
		return consentmode.Input{}, ErrNotReplayable
	}
	route := &consentmode.Routes[ri]
	if route.Family == consentmode.FamilyMP || route.Family == consentmode.FamilyScript {
		return consentmode.Input{}, ErrNotReplayable
	}
	in := consentmode.Input{Route: ri, Family: route.Family, Kind: route.Kind, Path: []byte(route.Pattern), GPC: r.Inputs.GPC, Day: ReplayDay}
	if reg, ok := consentmode.ParseRegion([]byte(r.Region)); ok {
		in.Region = reg
	}
	var q, cookies []string
	v := &r.Inputs.Values
	if tag := v[InputTag]; tag != "" {
		switch {
		case route.TagPrefix != "":
			in.PathTag = []byte(tag)
		case route.Family == consentmode.FamilyFloodlight:
			q = append(q, "src="+tag)
		case route.Family == consentmode.FamilyAds:
			q = append(q, "id="+tag)
		default:
			q = append(q, "tid="+tag)
		}
	}
	for i := InputGCS; i < InputTCFCookie; i++ {
		if v[i] != "" {
			q = append(q, i.Name()+"="+v[i])
		}
	}
	if v[InputTCFCookie] != "" {
		cookies = append(cookies, "euconsent-v2="+v[InputTCFCookie])
	}
	placeholder := strings.NewReplacer("*", "x", "#", "1")
	for f := range r.Inputs.Present.All {
		name := f.String()
		switch {
		case name == "cookie:other":
			cookies = append(cookies, "other=1")
		case strings.HasPrefix(name, "cookie:"):
			cookies = append(cookies, placeholder.Replace(name[len("cookie:"):])+"=1")
		case !strings.Contains(name, ":") && name != "email":
			q = append(q, placeholder.Replace(name)+"=1")
		}
	}
	if route.Family == consentmode.FamilyFloodlight {
		in.Matrix = []byte(strings.Join(q, ";"))
	} else {
		in.Query = []byte(strings.Join(q, "&"))
	}
	if len(cookies) > 0 {
		in.Cookie = []byte(strings.Join(cookies, "; "))
	}
	return in, nil
}
