package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/consentgate/consentgate/config"
)

// ruleChange is one entry of the rule table that differs between two
// configs; Old or New is empty when the entry exists on one side only.
type ruleChange struct {
	Key string `json:"key"`
	Old string `json:"old,omitempty"`
	New string `json:"new,omitempty"`
}

// rulesDiff prints how the rule tables of the configs at oldPath and
// newPath differ.
func rulesDiff(oldPath, newPath string, asJSON bool, w io.Writer) error {
	var flat [2]map[string]string
	var versions [2]string
	for i, p := range []string{oldPath, newPath} {
		cfg, err := config.Load(p)
		if err != nil {
			return err
		}
		d := buildRulesDoc(cfg)
		versions[i] = d.PolicyVersion
		d.PolicyVersion = "" // differs whenever anything does
		b, err := json.Marshal(d)
		if err != nil {
			return err
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		flat[i] = map[string]string{}
		flatten(flat[i], "", v)
	}
	changes := diffFlat(flat[0], flat[1])
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Old     string       `json:"old_policy_version"`
			New     string       `json:"new_policy_version"`
			Changes []ruleChange `json:"changes"`
		}{versions[0], versions[1], changes})
	}
	fmt.Fprintf(w, "--- %s (policy %s)\n+++ %s (policy %s)\n", configName(oldPath), versions[0], configName(newPath), versions[1])
	for _, c := range changes {
		if c.Old != "" {
			fmt.Fprintf(w, "- %s = %s\n", c.Key, c.Old)
		}
		if c.New != "" {
			fmt.Fprintf(w, "+ %s = %s\n", c.Key, c.New)
		}
	}
	if len(changes) == 0 {
		fmt.Fprintln(w, "the rule tables are the same")
	}
	return nil
}

// diffFlat lists the keys whose values differ, in key order.
func diffFlat(a, b map[string]string) []ruleChange {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	var out []ruleChange
	for _, k := range sortedKeys(keys) {
		if a[k] != b[k] {
			out = append(out, ruleChange{Key: k, Old: a[k], New: b[k]})
		}
	}
	return out
}

// flatten writes v as key = value lines. A list of objects is keyed by
// what names its entries (route and situation, name, region, input)
// rather than by position, so that an entry added in the middle shows as
// one change; lists of plain values become one space-separated value.
func flatten(out map[string]string, prefix string, v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			flatten(out, join(prefix, k), e)
		}
	case []any:
		plain := true
		for _, e := range x {
			if _, ok := e.(map[string]any); ok {
				plain = false
			}
		}
		if plain {
			parts := make([]string, len(x))
			for i, e := range x {
				parts[i] = fmt.Sprint(e)
			}
			out[prefix] = "[" + strings.Join(parts, " ") + "]"
			return
		}
		seen := map[string]int{}
		for i, e := range x {
			id := entryID(e.(map[string]any), i)
			seen[id]++
			if seen[id] > 1 {
				id += fmt.Sprintf("#%d", seen[id])
			}
			flatten(out, prefix+"["+id+"]", e)
		}
	case nil:
		out[prefix] = "none"
	default:
		out[prefix] = fmt.Sprint(x)
	}
}

func entryID(m map[string]any, i int) string {
	var parts []string
	for _, k := range []string{"route", "situation", "name", "region", "input", "from", "families", "where"} {
		if v, ok := m[k]; ok {
			parts = append(parts, fmt.Sprint(v))
		}
	}
	if len(parts) == 0 {
		return fmt.Sprint(i)
	}
	return strings.Join(parts, " ")
}

func join(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

// configName names a --config argument: "" is the embedded default.
func configName(path string) string {
	if path == "" {
		return "the embedded default"
	}
	return path
}
