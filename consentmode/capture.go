package consentmode

import (
	"errors"
	"fmt"
	"strings"
)

// CapturedHit is one hit of a TSV capture (the format of
// testdata/public-hits.tsv, which `audit` also reads).
type CapturedHit struct {
	Line   int    // 1-based line number
	Source string // where the hit was found; empty when the line has no SOURCE column
	// Method is the request method; empty when the capture does not say
	// (METHOD "UNSTATED" or no METHOD column).
	Method string
	URL    string // as captured; RepairURL makes it absolute
	Body   string // with the "\n" escapes turned into line breaks
}

// ErrCaptureColumns is returned for a TSV line with the wrong number of columns.
var ErrCaptureColumns = errors.New("consentmode: want METHOD<TAB>URL, optionally with <TAB>BODY after and SOURCE<TAB> before")

// ParseCapture reads a TSV capture: one hit per line as
// SOURCE<TAB>METHOD<TAB>URL<TAB>BODY, where SOURCE and BODY may be left
// out. Lines starting with '#' and blank lines are skipped. A BODY of "-"
// means none, and "\n" in it a line break. The result does not refer to
// data.
func ParseCapture(data []byte) ([]CapturedHit, error) {
	var hits []CapturedHit
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		cols := strings.Split(line, "\t")
		switch len(cols) {
		case 2: // METHOD, URL
			cols = []string{"", cols[0], cols[1], ""}
		case 3: // METHOD, URL, BODY
			cols = append([]string{""}, cols...)
		}
		if len(cols) != 4 {
			return nil, fmt.Errorf("line %d: %w; got %d columns", n+1, ErrCaptureColumns, len(cols))
		}
		h := CapturedHit{Line: n + 1, Source: cols[0], Method: cols[1], URL: cols[2], Body: cols[3]}
		if h.Method == "UNSTATED" {
			h.Method = ""
		}
		if h.Body == "-" {
			h.Body = ""
		}
		h.Body = strings.ReplaceAll(h.Body, `\n`, "\n")
		hits = append(hits, h)
	}
	return hits, nil
}

// RepairURL makes a captured URL absolute: HTML-escaped ("&amp;"),
// scheme-relative ("//host/...") and query-only ("?v=2&...", taken as a
// GA4 hit on host) URLs are repaired, and the measurement path of a tag
// gateway capture is cut so the hit behind it remains.
func RepairURL(s, host string) string {
	s = strings.ReplaceAll(s, "&amp;", "&")
	switch {
	case strings.HasPrefix(s, "//"):
		s = "https:" + s
	case strings.HasPrefix(s, "?"):
		s = "https://" + host + "/g/collect" + s
	}
	for _, p := range tagGatewayCapturePaths {
		s = strings.Replace(s, p+"/", "/", 1)
	}
	return s
}

// tagGatewayCapturePaths are the measurement paths public tag gateway
// captures carry (a placeholder and a test setup).
var tagGatewayCapturePaths = []string{"/PHP_GTG_REPLACE_PATH", "/test/measurement"}
