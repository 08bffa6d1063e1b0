package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// Load reads the embedded defaults, the YAML file at path (no file when
// path is empty) and the CONSENTGATE_* environment overrides, and
// validates the result. The error, a *ProblemsError, lists every problem
// found in one go: unknown keys (with the closest known key), values of
// the wrong type and invalid values (with the allowed ones), each with its
// source: the file and line, or the environment variable.
//
// Each source is read once. The file is parsed into one yaml.v3 node,
// which has the lines and the unknown keys; every scalar in it and every
// environment variable is checked against its key's type by the same
// rules (scalarValue), so a value means the same in the file and in the
// environment. What passes is handed to one viper, which merges the
// defaults, the file and the environment; a value that does not pass is
// reported and left out, so the key keeps its default and build checks
// the rest without a second report for it.
func Load(path string, opts ...Option) (*Config, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	in, err := read(path)
	if err != nil {
		return nil, err
	}
	f, problems := in.decode()
	c, more := build(f, &o)
	problems = append(problems, more...)
	if len(problems) > 0 {
		pe := in.report(problems)
		if f.Log.Format == "json" || f.Log.Format == "console" || f.Log.Format == "auto" {
			pe.LogFormat = f.Log.Format
		}
		return nil, pe
	}
	c.Source = in.source
	c.Sources = make(map[string]string, len(c.Settings))
	for k := range c.Settings {
		c.Sources[k] = in.loc.origin(k)
	}
	return c, nil
}

// input is a configuration read but not decoded yet.
type input struct {
	v        *viper.Viper
	source   string  // the file, or "embedded"
	loc      locator // where each key's value came from
	problems []error // found while reading: type problems and unknown keys
}

// read parses the embedded defaults and the file at path (if any) once
// each, checks them, and hands what passes to viper together with the
// environment variables that pass. Its errors stop Load at once: an
// unreadable, unparsable or empty file has no keys to report on.
func read(path string) (*input, error) {
	in := &input{v: viper.New(), source: "embedded", loc: locator{lines: map[string]int{}, env: map[string]string{}}}
	defRoot, err := parseRoot(defaultYAML)
	if err != nil {
		return nil, fmt.Errorf("config: embedded default: %w", err)
	}
	defaults, ps := checkNode(defRoot, reflect.TypeFor[file](), "", nil)
	if len(ps) > 0 {
		return nil, fmt.Errorf("config: embedded default: %w", errors.Join(ps...))
	}
	leaves := map[string]any{}
	flattenMap(defaults.(map[string]any), "", leaves)
	for k, x := range leaves {
		in.v.SetDefault(k, x)
	}

	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		root, err := parseRoot(b)
		switch {
		case errors.Is(err, ErrEmptyFile):
			return nil, fmt.Errorf("%s: %w", path, err)
		case errors.Is(err, errNotMapping):
			return nil, &ProblemsError{Source: path, Problems: []error{&Problem{Source: path, Msg: err.Error()}}}
		case err != nil:
			return nil, &ProblemsError{Source: path, Problems: yamlProblems(path, err)}
		}
		in.source, in.loc.path = path, path
		fileValues, ps := checkNode(root, reflect.TypeFor[file](), "", in.loc.lines)
		in.problems = append(in.problems, ps...)
		if m, ok := fileValues.(map[string]any); ok {
			if err := in.v.MergeConfigMap(m); err != nil {
				return nil, fmt.Errorf("config: %s: %w", path, err)
			}
		}
	}

	known := make([]string, 0, len(leaves))
	for k := range leaves {
		known = append(known, k)
	}
	sort.Strings(known)
	in.problems = append(in.problems, in.bindEnv(known)...)
	in.problems = append(in.problems, unknownEnv(known)...)
	return in, nil
}

// ErrEmptyFile is a config file that sets nothing: empty, only comments,
// or a YAML document with no keys. It is refused rather than read as "all
// defaults": a truncated or half-written file would otherwise silently
// drop every setting (tags, upstream) while serving.
var ErrEmptyFile = errors.New("config: the file sets nothing (empty, only comments or no keys); refusing it rather than falling back to the defaults")

var errNotMapping = errors.New("the file is not a mapping of keys to values (key: value lines)")

// parseRoot parses b into a yaml.v3 node and returns its top-level
// mapping. The error is the parser's (with lines), ErrEmptyFile or
// errNotMapping.
func parseRoot(b []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		return nil, ErrEmptyFile
	}
	root := resolve(doc.Content[0])
	switch {
	case root.Kind == yaml.ScalarNode && root.Tag == "!!null":
		return nil, ErrEmptyFile
	case root.Kind != yaml.MappingNode:
		return nil, errNotMapping
	case len(root.Content) == 0:
		return nil, ErrEmptyFile
	}
	return root, nil
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// checkNode checks node n, the value of key, against the Go type t of the
// file's layout and returns its value for viper (nil when absent or
// invalid) and the problems: unknown keys, values of the wrong type. It
// records the line of every key in lines (when not nil). Mapping keys are
// lower-cased, as viper does.
func checkNode(n *yaml.Node, t reflect.Type, key string, lines map[string]int) (any, []error) {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil // "key:" with no value: not set, the default stays
	}
	var ps []error
	switch {
	case t.Kind() == reflect.Struct || t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			return nil, []error{problem(key, "%s is not %s", showNode(n), describeType(t))}
		}
		out := make(map[string]any, len(n.Content)/2)
		seen := make(map[string]int, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := resolve(n.Content[i]), n.Content[i+1]
			name := strings.ToLower(k.Value)
			sub := joinKey(key, name)
			if first, dup := seen[name]; dup {
				// yaml.v3 reports this only when decoding into a map.
				ps = append(ps, &Problem{Msg: fmt.Sprintf("not valid YAML: mapping key %q already defined at line %d", k.Value, first), line: k.Line})
				continue
			}
			seen[name] = k.Line
			if lines != nil {
				lines[sub] = k.Line
			}
			var elem reflect.Type
			if t.Kind() == reflect.Struct {
				f, ok := fieldByTag(t, name)
				if !ok {
					ps = append(ps, problem(sub, "unknown key%s", suggest(sub, t)))
					continue
				}
				elem = f.Type
			} else {
				elem = t.Elem()
			}
			x, more := checkNode(v, elem, sub, lines)
			ps = append(ps, more...)
			if x != nil {
				out[name] = x
			}
		}
		return out, ps
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		bad := false
		for i, c := range n.Content {
			sub := key + "[" + strconv.Itoa(i) + "]"
			if lines != nil {
				lines[sub] = c.Line
			}
			x, more := checkNode(c, t.Elem(), sub, lines)
			ps = append(ps, more...)
			if x == nil {
				bad = true
			}
			out = append(out, x)
		}
		if bad {
			return nil, ps // a list with a hole would shift the rest
		}
		return out, ps
	case n.Kind != yaml.ScalarNode:
		return nil, []error{problem(key, "%s is not %s", showNode(n), describeType(t))}
	}
	x, err := scalarValue(t, n.Value)
	if err != nil {
		return nil, []error{problem(key, "%s", err)}
	}
	return x, nil
}

// scalarValue converts the text of a scalar, from the file or from an
// environment variable, to a value of type t. File and environment go
// through it alike, so that they take the same values:
//
//   - a duration needs its unit: "5s", never a bare 5 (which would be 5
//     nanoseconds); only "0" may go without;
//   - a boolean is true or false (any case), never yes, on, 1 or "t";
//   - a whole number is written without a fraction or an exponent;
//   - a list given as one scalar is split at commas ("G-1,AW-2");
//   - a string takes any scalar as written (listen: 8080 is "8080").
//
// It returns the value viper is given; the error says what is wrong.
func scalarValue(t reflect.Type, s string) (any, error) {
	if t == durationType {
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not %s", s, describeType(t))
		}
		return d, nil
	}
	switch t.Kind() {
	case reflect.Bool:
		switch strings.ToLower(s) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
	case reflect.Int, reflect.Int64:
		if n, err := strconv.ParseInt(s, 0, 64); err == nil {
			return n, nil
		}
	case reflect.Float64:
		if x, err := strconv.ParseFloat(s, 64); err == nil {
			return x, nil
		}
	case reflect.String:
		return s, nil
	case reflect.Slice:
		if k := t.Elem().Kind(); k == reflect.Struct || k == reflect.Map || k == reflect.Slice {
			break
		}
		var out []any
		for part := range strings.SplitSeq(s, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			x, err := scalarValue(t.Elem(), part)
			if err != nil {
				return nil, err
			}
			out = append(out, x)
		}
		if out == nil {
			out = []any{}
		}
		return out, nil
	}
	return nil, fmt.Errorf("%q is not %s", s, describeType(t))
}

// showNode shows a mapping or list given where another type belongs.
func showNode(n *yaml.Node) string {
	flow := *n
	flow.Style = yaml.FlowStyle
	b, err := yaml.Marshal(&flow)
	if err != nil {
		return "the value"
	}
	return strconv.Quote(strings.TrimSpace(string(b)))
}

// flattenMap lists the leaves of m by dotted key; an empty map or any
// list is a leaf.
func flattenMap(m map[string]any, prefix string, out map[string]any) {
	for k, x := range m {
		key := joinKey(prefix, k)
		if sub, ok := x.(map[string]any); ok && len(sub) > 0 {
			flattenMap(sub, key, out)
			continue
		}
		out[key] = x
	}
}

// bindEnv checks the CONSENTGATE_* variable of each key and binds those
// that pass, so that viper reads them over the file. A variable of a key
// that takes a mapping or a list of mappings is refused: only the file
// can say those.
func (in *input) bindEnv(keys []string) []error {
	var ps []error
	for _, k := range keys {
		name := EnvName(k)
		s := os.Getenv(name)
		if s == "" {
			continue // viper ignores an empty variable too
		}
		in.loc.env[k] = name
		t, ok := typeAt(k)
		if !ok {
			continue
		}
		fail := func(msg string) {
			ps = append(ps, &Problem{Key: k, Source: "environment variable " + name, Msg: msg, env: true})
		}
		if t.Kind() == reflect.Map || t.Kind() == reflect.Struct || (t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct) {
			fail("takes a mapping or a list of mappings, which only the file can set")
			continue
		}
		if _, err := scalarValue(t, s); err != nil {
			fail(err.Error())
			continue
		}
		if err := in.v.BindEnv(k, name); err != nil {
			fail(err.Error())
		}
	}
	return ps
}

// decode unmarshals viper's merged settings into the file's layout. Every
// value was checked before viper got it, so a problem here is a bug of the
// checks; it is reported like the others rather than lost.
func (in *input) decode() (*file, []error) {
	var f file
	problems := in.problems
	if err := in.v.Unmarshal(&f); err != nil {
		problems = append(problems, &Problem{Msg: err.Error()})
	}
	return &f, problems
}

// report gives each problem its source (file line or environment
// variable) and sorts them as a reader fixes them.
func (in *input) report(problems []error) *ProblemsError {
	for _, e := range problems {
		var p *Problem
		if errors.As(e, &p) {
			in.loc.locate(p)
		}
	}
	sortProblems(problems)
	return &ProblemsError{Source: in.source, Problems: problems}
}
