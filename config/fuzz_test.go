package config

import (
	"reflect"
	"testing"
)

// FuzzProblems feeds arbitrary files through what Load does with a file's
// text: parsing it once, checking every value against the file's layout
// while indexing the lines of its keys, and reporting invalid YAML. None
// may panic, every indexed key must have a line of the file, and locating
// a problem of any key must not panic either.
func FuzzProblems(f *testing.F) {
	for _, s := range []string{
		"consent:\n  mdoe: basic\n  regions:\n    DE: {dfault: denied}\n",
		"tags: [G-1, nope]\ncmp: [{a: 1}, [2]]\n",
		"a: [\n", "{}", "- 1\n- 2\n", "x: &a [1]\ny: *a\n",
		"timeouts: {upstream: 5}\nconsent: {enforce: \"false\", signals: {gpc: 1}}\n",
		"consent: {cmp_cookies: [{preset: x, keys: [1]}, ~]}\nlimits: {max_body_bytes: 1e9}\n",
	} {
		f.Add(s, "consent.regions.de.dfault")
	}
	f.Add("tags: [1]", "tags[0]")
	f.Add("", "a[1].b[")
	f.Fuzz(func(t *testing.T, doc, key string) {
		lines := map[string]int{}
		root, err := parseRoot([]byte(doc))
		if err != nil {
			_ = yamlProblems("f.yaml", err)
			return
		}
		_, _ = checkNode(root, reflect.TypeFor[file](), "", lines)
		for k, line := range lines {
			if line < 1 {
				t.Fatalf("key %q at line %d", k, line)
			}
		}
		l := locator{path: "f.yaml", lines: lines, env: map[string]string{}}
		p := problem(key, "x")
		l.locate(p)
		_, _ = typeAt(key)
	})
}

// FuzzScalarValue: the text of a file's scalar or of an environment
// variable, for any key type: never panics, and a duration never comes
// back from a bare number other than 0.
func FuzzScalarValue(f *testing.F) {
	for _, s := range []string{"5", "5s", "0", "true", "TRUE", "yes", "1e9", "0x10", "G-1,AW-2", ",", "-1ns"} {
		f.Add(s)
	}
	types := []reflect.Type{durationType, reflect.TypeFor[bool](), reflect.TypeFor[int](), reflect.TypeFor[int64](),
		reflect.TypeFor[float64](), reflect.TypeFor[string](), reflect.TypeFor[[]string](), reflect.TypeFor[[]cmpCookieFile]()}
	f.Fuzz(func(t *testing.T, s string) {
		for _, typ := range types {
			_, _ = scalarValue(typ, s)
		}
		if _, err := scalarValue(durationType, s); err == nil && s != "0" && s != "+0" && s != "-0" {
			for _, c := range s {
				if c < '0' || c > '9' {
					return
				}
			}
			t.Fatalf("duration %q accepted without a unit", s)
		}
	})
}
