package config

import (
	"errors"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzProblems feeds arbitrary files through what check does with a
// file's text and with the keys of its problems: indexing lines, reading
// values and types at a key, and reporting invalid YAML. None may panic,
// and every indexed key must resolve to a line of the file.
func FuzzProblems(f *testing.F) {
	for _, s := range []string{
		"consent:\n  mdoe: basic\n  regions:\n    DE: {dfault: denied}\n",
		"tags: [G-1, nope]\ncmp: [{a: 1}, [2]]\n",
		"a: [\n", "{}", "- 1\n- 2\n", "x: &a [1]\ny: *a\n",
	} {
		f.Add(s, "consent.regions.de.dfault")
	}
	f.Add("tags: [1]", "tags[0]")
	f.Add("", "a[1].b[")
	f.Fuzz(func(t *testing.T, doc, key string) {
		l := newLocator("f.yaml", []byte(doc))
		for k, line := range l.lines {
			if line < 1 {
				t.Fatalf("key %q at line %d", k, line)
			}
		}
		p := problem(key, "x")
		l.locate(p)
		_ = decodeKey(key)
		_, _ = typeAt(key)
		var settings map[string]any
		if yaml.Unmarshal([]byte(doc), &settings) == nil {
			_ = showValue(valueAt(settings, key))
			_ = unknownKeys(settings)
		}
		_ = yamlProblems("f.yaml", []byte(doc), errors.New("viper's error"))
	})
}
