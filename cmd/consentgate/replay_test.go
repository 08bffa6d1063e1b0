package main

import (
	"encoding/json"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/consentgate/consentgate/consentmode"
)

// replayLog is a decision log the binary wrote for testdata/public-hits.tsv
// and a few hits with other inputs (TestRecordReplayLog), signed with the
// key whose public half is replayPub.
const (
	replayLog = "../../testdata/audit/replay.log"
	replayPub = "../../testdata/audit/replay-signing.pub"
)

// replayHits are the public hits of testdata/public-hits.tsv, each from
// DE, US or an unknown region in turn, and a few with the other inputs:
// GPC, the euconsent-v2 cookie, Google cookies.
func replayHits(t *testing.T) []testHit {
	data, err := os.ReadFile("../../testdata/public-hits.tsv")
	if err != nil {
		t.Fatal(err)
	}
	captured, err := consentmode.ParseCapture(data)
	if err != nil {
		t.Fatal(err)
	}
	var hits []testHit
	for i, c := range captured {
		u, err := url.Parse(consentmode.RepairURL(c.URL, "gateway.invalid"))
		if err != nil || !isTagRequest(u.String()) {
			continue
		}
		h := testHit{path: u.RequestURI(), headers: map[string]string{}}
		if region := []string{"DE", "US", ""}[i%3]; region != "" {
			h.headers["CF-IPCountry"] = region
		}
		hits = append(hits, h)
	}
	ga4 := "/g/collect?v=2&tid=G-ABC123&gcs=G111&gcd=13r3r3r2r5l1&cid=1.2&sid=3&en=page_view"
	return append(hits,
		testHit{ga4, map[string]string{"CF-IPCountry": "US-CA", "Sec-GPC": "1"}},
		testHit{ga4, map[string]string{"CF-IPCountry": "FR", "Cookie": "_ga=GA1.1.1.2; euconsent-v2=CQPpF8AQPpF8AAHABBENBlFsAP_gAEPgAAqIKqtV_G__bWlr8X73aftkeY1P9_h77sQxBhfJE-4FzLvW_JwXx2ExNA36tqIKmRIAu3bBIQNlGJDUTVCgaogVryDMaE2coTNKJ6BkiFMRM2dYCF5vm4tj-QKY5vr991dx2B-t7dr83dzyz4VHn3a5_2a0WJCdA5-tDfv9bROb-9IOd_x8v4v8_F_rE2_eT1l_tWvp7D9-cts7_XW-9_fff79Ll_-mBwUcALMNCogDLIkJCDQMIIEAKgrCAigQAAAAkDRAQAmDAp2RgEusJkAIAUAAgQAgBBRAACAAAAQFBEAAFkAAKIIQAABAAABAAQAAAAAAAgBAAQAQgAQAAAAAAIAAAAAAAAgAAAAAAAAAAAAAAAA; session=1"}},
		testHit{ga4 + "&gpp=DBABMA~CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA&gpp_sid=2", map[string]string{"CF-IPCountry": "DE"}},
	)
}

// TestRecordReplayLog re-records testdata/audit/replay.log with the
// binary (go test ./cmd/consentgate -run TestRecordReplayLog -update).
func TestRecordReplayLog(t *testing.T) {
	if !*update {
		t.Skip("re-records the replay log with -update")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(fasthttp.StatusNoContent) }}
	go func() { _ = up.Serve(ln) }()
	defer func() { _ = up.Shutdown() }()
	logPath := filepath.Join(dir, "replay.log")
	cfgPath := filepath.Join(dir, "config.yaml")
	// A fresh key signs the log; only its public half is kept.
	key := filepath.Join(dir, "signing")
	if out, code := runBin(t, bin, "keygen", "--out", key); code != 0 {
		t.Fatalf("keygen: %s", out)
	}
	cfg := "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nupstream: http://" + ln.Addr().String() + "\n" +
		"cookieless: {secret: replay-test-secret-0123}\ndelivery: {ga4: sync, ads: sync, floodlight: sync, ua: sync}\n" +
		"log: {format: json, decisions: {output: " + logPath + ", signing_key: " + key + ".key}}\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	serveLog(t, bin, cfgPath, replayHits(t))
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(replayLog, data, 0o644); err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(replayPub, pub, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestVerifySampleLog: the sample log of docs/auditors.md verifies under
// its public key.
func TestVerifySampleLog(t *testing.T) {
	t.Parallel()
	out, errOut, err := runCLI(t, "audit", "--verify", "--pubkey", replayPub, replayLog)
	if err != nil || !strings.Contains(out, "verdict  verified") {
		t.Errorf("audit --verify of the sample log: %v %s\n%s", err, errOut, out)
	}
}

// TestReplaySamePolicy: replayed under the policy that wrote it, every
// logged hit is decided as the log says, and nothing changes.
func TestReplaySamePolicy(t *testing.T) {
	t.Parallel()
	_, errOut, err := runCLI(t, "replay", "--json", "--config", "../../internal-none.yaml", replayLog)
	if err == nil || !strings.Contains(err.Error(), "internal-none.yaml") {
		t.Fatalf("a missing --config: err %v %s", err, errOut)
	}
	empty := filepath.Join(t.TempDir(), "same.yaml")
	if err := os.WriteFile(empty, []byte("log: {level: info}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := runCLI(t, "replay", "--json", "--config", empty, replayLog)
	if err != nil {
		t.Fatalf("replay: %v %s", err, errOut)
	}
	var rep replayReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	// Every record but the two script fetches (nothing to re-decide) is replayed.
	if rep.Records < 30 || rep.NotReplayable != 2 || rep.Replayed != rep.Records-2 || rep.Changed != 0 || len(rep.Transitions) != 0 || len(rep.Mismatches) != 0 || rep.MoreLeaves != 0 {
		t.Errorf("same policy: %+v", rep)
	}
}

// TestReplayGolden: the transition tables of the replay log under a
// stricter and a looser policy. The looser one fails (exit 1): some hits
// would send more.
func TestReplayGolden(t *testing.T) {
	tests := []struct {
		name     string
		policy   string
		wantMore bool
	}{
		{"basic", "../../testdata/audit/policy-basic.yaml", false},
		{"loose", "../../testdata/audit/policy-loose.yaml", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := runCLI(t, "replay", "--config", tt.policy, replayLog)
			if tt.wantMore != errors.Is(err, errFailed) || err != nil && !errors.Is(err, errFailed) {
				t.Fatalf("replay: err %v, want more leaving %v", err, tt.wantMore)
			}
			// The policy versions move with any config change; the table is what matters.
			_, out, _ = strings.Cut(out, "\n")
			golden := "../../testdata/audit/replay-" + tt.name + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if out != string(want) {
				t.Errorf("replay under %s differs from %s (run with -update and read the diff):\n%s", tt.policy, golden, out)
			}
		})
	}
}
