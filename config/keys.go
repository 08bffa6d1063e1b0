package config

import (
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Key describes one configuration key for the reference in docs/operators.md.
// The keys and their types come from the file struct, the defaults and
// the descriptions from the embedded default.yaml and its comments.
type Key struct {
	// Name is the dotted key ("consent.mode"). Keys inside lists and maps
	// read "consent.cmp_cookies[].name" and "consent.regions.<CODE>.default".
	Name string
	// Type says which values it takes ("true or false", "a duration ...").
	Type string
	// Default is the embedded default in YAML flow form; "" for none.
	Default string
	// Doc is the default.yaml comment of the key, or the field's doc tag.
	Doc string
	// Restart is true when a reload does not apply the key: the process
	// must restart.
	Restart bool
}

// restartKeys are the keys a reload cannot apply: they are fixed when the
// listeners, the connection pools, the script cache or the logs are made.
// A key ending in "." covers every key below it.
var restartKeys = []string{
	"listen", "admin_listen",
	"limits.max_body_bytes", "limits.max_header_bytes", "limits.max_response_bytes", "limits.max_conns_per_upstream",
	"limits.max_connections", "limits.reduce_memory",
	"timeouts.read", "timeouts.write", "timeouts.idle", "timeouts.upstream_conn_wait", "timeouts.upstream_idle",
	"cache.max_bytes",
	"log.format", "log.decisions.output", "log.decisions.checkpoint", "log.decisions.signing_key", "log.decisions.kafka.",
	// The delivery lanes keep their queue, workers and spool; only the
	// per-family modes (delivery.ga4 …) apply on reload.
	"delivery.max_age", "delivery.queue_size", "delivery.queue_bytes", "delivery.workers", "delivery.pipeline_conns", "delivery.http2",
	"delivery.drain", "delivery.spool.",
	// The vendors' lanes and batchers are made at start.
	"vendors.",
}

// NeedsRestart reports whether a change of key takes effect only after a
// restart.
func NeedsRestart(key string) bool { return matchKey(restartKeys, key) }

// policyKeys are the keys that change a decision or a byte forwarded
// upstream: what is allowed (tags, mp, ua), how consent is decided
// (consent, and the region: trusted_proxies, geo), the cookieless ids and
// where hits go (upstream, path_prefix). The policy version hashes exactly
// these (secrets left out). Not in it: listeners, limits and CORS (they
// refuse requests, nothing is decided), timeouts, logs, the script cache
// and delivery (how and when the same bytes leave). A key added below
// consent. is a policy key without being listed.
var policyKeys = []string{
	"upstream", "path_prefix", "tags", "mp.", "ua.", "consent.", "cookieless.", "trusted_proxies", "geo.", "vendors.",
}

// PolicyKey reports whether key is hashed into the policy version.
func PolicyKey(key string) bool { return matchKey(policyKeys, key) && !secretKeys[key] }

// matchKey reports whether key is one of list or below one of its
// entries; an entry ending in "." covers every key below it.
func matchKey(list []string, key string) bool {
	for _, r := range list {
		if key == r || (strings.HasSuffix(r, ".") && strings.HasPrefix(key, r)) || strings.HasPrefix(key, r+".") || strings.HasPrefix(key, r+"[") {
			return true
		}
	}
	return false
}

// Keys lists every configuration key in the order of default.yaml.
func Keys() []Key {
	docs, defaults := defaultDocs()
	var keys []Key
	var walk func(t reflect.Type, prefix string, inDefault bool)
	walk = func(t reflect.Type, prefix string, inDefault bool) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
			name := joinKey(prefix, tag)
			doc := docs[name]
			if doc == "" {
				doc = f.Tag.Get("doc")
			}
			k := Key{Name: name, Type: describeType(f.Type), Default: defaults[name], Doc: doc, Restart: NeedsRestart(name)}
			switch {
			case f.Type.Kind() == reflect.Struct:
				walk(f.Type, name, inDefault)
				continue
			case f.Type.Kind() == reflect.Map && f.Type.Elem().Kind() == reflect.Struct:
				k.Type = "a mapping of region codes to region rules"
				keys = append(keys, k)
				walk(f.Type.Elem(), name+".<CODE>", false)
				continue
			case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
				k.Type = "a list of mappings"
				keys = append(keys, k)
				walk(f.Type.Elem(), name+"[]", false)
				continue
			case f.Type.Kind() == reflect.Map && inDefault && hasChildren(defaults, name):
				// consent.signals: each signal is a key of its own in the defaults.
				keys = append(keys, k)
				for _, child := range childKeys(defaults, name) {
					keys = append(keys, Key{Name: child, Type: describeType(f.Type.Elem()), Default: defaults[child], Doc: docs[child], Restart: NeedsRestart(child)})
				}
				continue
			}
			keys = append(keys, k)
		}
	}
	walk(reflect.TypeFor[file](), "", true)
	return keys
}

func hasChildren(defaults map[string]string, key string) bool {
	return len(childKeys(defaults, key)) > 0
}

// childKeys lists the keys directly below key in the defaults, in file order.
func childKeys(defaults map[string]string, key string) []string {
	var out []string
	for _, k := range defaultOrder() {
		if strings.HasPrefix(k, key+".") && !strings.Contains(k[len(key)+1:], ".") {
			out = append(out, k)
		}
	}
	return out
}

// defaultOrder lists the keys of default.yaml in file order.
func defaultOrder() []string {
	var order []string
	var doc yaml.Node
	if yaml.Unmarshal(defaultYAML, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := joinKey(prefix, n.Content[i].Value)
			order = append(order, key)
			walk(n.Content[i+1], key)
		}
	}
	walk(doc.Content[0], "")
	return order
}

// defaultDocs reads the comment and the default value of every key of
// default.yaml. Comment lines indented as examples ("#   regions:") and
// commented-out YAML are left out.
func defaultDocs() (docs, defaults map[string]string) {
	docs, defaults = map[string]string{}, map[string]string{}
	var doc yaml.Node
	if yaml.Unmarshal(defaultYAML, &doc) != nil || len(doc.Content) == 0 {
		return docs, defaults
	}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := joinKey(prefix, k.Value)
			text := commentText(k.HeadComment)
			if line := commentText(k.LineComment + v.LineComment); line != "" {
				text = strings.TrimSpace(text + " " + line)
			}
			docs[key] = text
			if v.Kind == yaml.MappingNode && len(v.Content) > 0 {
				walk(v, key)
				continue
			}
			flow := *v
			flow.Style = yaml.FlowStyle
			flow.HeadComment, flow.LineComment, flow.FootComment = "", "", ""
			for _, c := range flow.Content {
				c.HeadComment, c.LineComment, c.FootComment = "", "", ""
			}
			b, err := yaml.Marshal(&flow)
			if err == nil {
				defaults[key] = strings.TrimSpace(string(b))
			}
		}
	}
	walk(doc.Content[0], "")
	return docs, defaults
}

// commentText joins the lines of a YAML comment into one paragraph,
// dropping example lines (indented after the '#').
func commentText(c string) string {
	var words []string
	for line := range strings.SplitSeq(c, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		body := strings.TrimPrefix(line, "#")
		if strings.HasPrefix(body, "   ") || strings.HasPrefix(body, "\t") {
			continue // an example block
		}
		words = append(words, strings.TrimSpace(body))
	}
	text := strings.Join(slices.DeleteFunc(words, func(s string) bool { return s == "" }), " ")
	if strings.HasSuffix(text, ":") { // the example it introduced is left out
		text = strings.TrimSuffix(text, ":") + "."
	}
	return text
}
