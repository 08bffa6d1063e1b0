package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// overClaimHit claims everything granted in gcs while its own gcd says
// the defaults are denied and never updated.
const overClaimHit = "https://metrics.shop.example/g/collect?v=2&tid=G-ABC123&_p=1&gcs=G111&gcd=13p3p3p2p5l1&cid=1174285007.1749196701&en=page_view"

// TestExplainShowsWhatTheHitSaid: each type's line shows the enforced
// value, the deciding source and what each input of the hit said, and
// flags an over-claim.
func TestExplainShowsWhatTheHitSaid(t *testing.T) {
	t.Parallel()
	out, _, err := runCLI(t, "explain", "--region", "DE", overClaimHit)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"consent  type                enforced decided by             what the hit said\n",
		"         ad_storage          denied   gcd                    gcs granted, gcd denied  << OVER-CLAIM: gcs said granted\n",
		"         ad_user_data        denied   gcd                    gcd denied\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hit claimed: denied") {
		t.Errorf("explain still prints only the merged claim:\n%s", out)
	}

	out, _, err = runCLI(t, "explain", "--json", "--region", "DE", "-H", "Cookie: euconsent-v2=tcunavailable", overClaimHit+"&gdpr=1&gdpr_consent=notatcstring")
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		Said map[string]map[string]string `json:"said"`
	}
	if err := json.Unmarshal([]byte(out), &e); err != nil {
		t.Fatal(err)
	}
	if got := e.Said["analytics_storage"]; got["gcs"] != "granted" || got["gcd"] != "denied" {
		t.Errorf("said[analytics_storage] = %v", got)
	}
	if got := e.Said["ad_storage"]["tcf"]; got != "denied" {
		t.Errorf("said[ad_storage][tcf] = %q, want denied (gdpr=1 without a usable string)", got)
	}
}

func TestAuditTwoColumnTSV(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "hits.tsv")
	if err := os.WriteFile(path, []byte("GET\t"+overClaimHit+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := runCLI(t, "audit", "--region", "DE", path)
	if err != nil {
		t.Fatalf("audit: %v %s", err, errOut)
	}
	if !strings.Contains(out, "hits.tsv:1") || !strings.Contains(out, "cookieless") {
		t.Errorf("two-column line not audited:\n%s", out)
	}
}

func TestAuditRelativeURLSaysHowToFixIt(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "hits.tsv")
	if err := os.WriteFile(path, []byte("GET\t/g/collect?v=2&tid=G-1&gcs=G100\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := runCLI(t, "audit", path)
	if err == nil || !strings.Contains(err.Error(), "hits.tsv:1") || !strings.Contains(err.Error(), "https://metrics.shop.example/g/collect?v=2") {
		t.Errorf("audit of a relative URL: %v", err)
	}
}

// TestExplainSaysReplacedAndClientIP: an id the forward carries with the
// gateway's own value is "replaced", not "removed", and explain says
// which client IP it used and where it came from.
func TestExplainSaysReplacedAndClientIP(t *testing.T) {
	t.Parallel()
	hit := overClaimHit + "&sid=1749196701&uid=u42"
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"stand-in peer", nil, []string{
			"removed  uid\n",
			"replaced cid, sid (the forward carries the gateway's value, not the hit's)\n",
			"client   127.0.0.1 (none given: explain's stand-in peer; use --client-ip or an X-Forwarded-For header)\n",
		}},
		{"given", []string{"--client-ip", "198.51.100.23"}, []string{
			"client   198.51.100.23 (given with --client-ip)\n",
		}},
		{"forwarded", []string{"-H", "X-Forwarded-For: 203.0.113.9"}, []string{
			"client   203.0.113.9 (the X-Forwarded-For header, believed from explain's stand-in peer 127.0.0.1, a trusted proxy)\n",
		}},
	}
	for _, tt := range tests {
		out, _, err := runCLI(t, append(append([]string{"explain", "--region", "DE"}, tt.args...), hit)...)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range tt.want {
			if !strings.Contains(out, want) {
				t.Errorf("%s: explain output lacks %q:\n%s", tt.name, want, out)
			}
		}
		if !strings.Contains(out, "&cid=") || strings.Contains(out, "removed  cid") {
			t.Errorf("%s: the forward has a cid while explain says removed:\n%s", tt.name, out)
		}
	}
	out, _, err := runCLI(t, "explain", "--json", "--client-ip", "198.51.100.23", hit)
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		ClientIP     string `json:"client_ip"`
		ClientIPFrom string `json:"client_ip_from"`
	}
	if err := json.Unmarshal([]byte(out), &e); err != nil || e.ClientIP != "198.51.100.23" || e.ClientIPFrom != "given" {
		t.Errorf("--json client: %+v %v", e, err)
	}
}
