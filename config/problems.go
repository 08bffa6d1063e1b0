package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a configuration: the key, where its
// value came from, and what is wrong with it (with the allowed values).
type Problem struct {
	// Key is the dotted key ("consent.mode", "consent.cmp_cookies[0].name");
	// "" for a problem of the whole file.
	Key string
	// Source is where the value came from: "file.yaml:12", "environment
	// variable CONSENTGATE_CONSENT_MODE" or "default"; "" when unknown.
	Source string
	// Msg says what is wrong, without the key.
	Msg string

	line int // the file line, for sorting; 0 when not from the file
	env  bool
}

func (p *Problem) Error() string {
	var b strings.Builder
	if p.Source != "" {
		b.WriteString(p.Source)
		b.WriteString(": ")
	}
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// problem returns a Problem of key; its source is filled in by Load.
func problem(key, format string, args ...any) *Problem {
	return &Problem{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// ProblemsError lists every problem of a configuration, in the order of
// the file's lines, then environment variables, then defaults.
type ProblemsError struct {
	Source   string
	Problems []error
}

func (e *ProblemsError) Error() string {
	var b strings.Builder
	n := len(e.Problems)
	plural := "s"
	if n == 1 {
		plural = ""
	}
	fmt.Fprintf(&b, "config %s: %d problem%s", e.Source, n, plural)
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// Unwrap returns the problems.
func (e *ProblemsError) Unwrap() []error { return e.Problems }

// locator says where a key's value came from.
type locator struct {
	path  string
	lines map[string]int // key → line in the file
}

// newLocator indexes the keys of the YAML file b by line. A file that
// does not parse yields no lines (viper reports the syntax error).
func newLocator(path string, b []byte) *locator {
	l := &locator{path: path, lines: map[string]int{}}
	var doc yaml.Node
	if path == "" || yaml.Unmarshal(b, &doc) != nil || len(doc.Content) == 0 {
		return l
	}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				key := strings.ToLower(k.Value)
				if prefix != "" {
					key = prefix + "." + key
				}
				l.lines[key] = k.Line
				walk(v, key)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				key := prefix + "[" + strconv.Itoa(i) + "]"
				l.lines[key] = c.Line
				walk(c, key)
			}
		}
	}
	walk(doc.Content[0], "")
	return l
}

// locate fills in where p's value came from: the environment variable
// that set it, else the closest line of the file, else the defaults.
func (l *locator) locate(p *Problem) {
	if p.Key == "" {
		if p.Source == "" {
			p.Source = l.name()
		}
		return
	}
	for key := p.Key; key != ""; key = parentKey(key) {
		if name := EnvName(key); os.Getenv(name) != "" {
			p.Source, p.env = "environment variable "+name, true
			return
		}
	}
	for key := strings.ToLower(p.Key); key != ""; key = parentKey(key) {
		if line, ok := l.lines[key]; ok {
			p.Source, p.line = fmt.Sprintf("%s:%d", l.path, line), line
			return
		}
	}
	p.Source = "default"
}

func (l *locator) name() string {
	if l.path == "" {
		return "embedded"
	}
	return l.path
}

// parentKey drops the last segment of a key: "a.b[0]" → "a.b" → "a".
func parentKey(k string) string {
	i := strings.LastIndexAny(k, ".[")
	if i < 0 {
		return ""
	}
	return k[:i]
}

// EnvName is the environment variable overriding key.
func EnvName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// sortProblems orders problems as a reader fixes them: the file top to
// bottom, then environment variables, then the rest.
func sortProblems(ps []error) {
	rank := func(e error) (int, int) {
		var p *Problem
		if !errors.As(e, &p) {
			return 3, 0
		}
		switch {
		case p.line > 0:
			return 0, p.line
		case p.env:
			return 1, 0
		}
		return 2, 0
	}
	sort.SliceStable(ps, func(i, j int) bool {
		ri, li := rank(ps[i])
		rj, lj := rank(ps[j])
		if ri != rj {
			return ri < rj
		}
		return li < lj
	})
}

// unknownKeys reports every key of settings that the file struct t does
// not have, each with the closest known key as a suggestion.
func unknownKeys(settings map[string]any) []error {
	var ps []error
	var walk func(v any, t reflect.Type, prefix string)
	walk = func(v any, t reflect.Type, prefix string) {
		switch t.Kind() {
		case reflect.Struct:
			m, ok := v.(map[string]any)
			if !ok {
				return // a type problem, reported by decoding
			}
			names := make([]string, 0, len(m))
			for k := range m {
				names = append(names, k)
			}
			sort.Strings(names)
			for _, k := range names {
				key := joinKey(prefix, k)
				f, ok := fieldByTag(t, k)
				if !ok {
					ps = append(ps, problem(key, "unknown key%s", suggest(key, t)))
					continue
				}
				walk(m[k], f.Type, key)
			}
		case reflect.Map:
			if m, ok := v.(map[string]any); ok {
				for k, x := range m {
					walk(x, t.Elem(), joinKey(prefix, k))
				}
			}
		case reflect.Slice:
			if l, ok := v.([]any); ok {
				for i, x := range l {
					walk(x, t.Elem(), prefix+"["+strconv.Itoa(i)+"]")
				}
			}
		}
	}
	walk(settings, reflect.TypeFor[file](), "")
	return ps
}

func joinKey(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

// fieldByTag finds the field of struct t whose mapstructure tag is name.
func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if tag, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ","); tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// suggest returns " (did you mean X?)" for the known key closest to key:
// a sibling within a few edits, or a key elsewhere with the same name.
func suggest(key string, siblings reflect.Type) string {
	last := key[strings.LastIndexAny(key, ".]")+1:]
	best, bestD := "", len(last)/3+2
	for i := range siblings.NumField() {
		tag, _, _ := strings.Cut(siblings.Field(i).Tag.Get("mapstructure"), ",")
		if d := editDistance(last, tag); d < bestD {
			best, bestD = tag, d
		}
	}
	if best != "" {
		return " (did you mean " + joinKey(parentKey(key), best) + "?)"
	}
	for _, k := range Keys() {
		if k.Name == last || strings.HasSuffix(k.Name, "."+last) {
			return " (did you mean " + k.Name + "?)"
		}
	}
	return ""
}

// editDistance is the Levenshtein distance of a and b, with a swap of two
// neighbouring letters counting as one edit ("mdoe" → "mode").
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// decodeProblems turns mapstructure's decoding errors into Problems that
// name the key, the value and the allowed values, and returns the keys
// that failed.
func decodeProblems(err error, settings map[string]any) []*Problem {
	var ps []*Problem
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		de, ok := err.(*mapstructure.DecodeError) //nolint:errorlint // walking the tree by hand: errors.As would stop at the first match
		if !ok {
			if inner := errors.Unwrap(err); inner != nil {
				walk(inner)
				return
			}
			ps = append(ps, &Problem{Msg: err.Error()})
			return
		}
		if inner := de.Unwrap(); inner != nil {
			var nested *mapstructure.DecodeError
			if errors.As(inner, &nested) {
				walk(inner)
				return
			}
		}
		key := decodeKey(de.Name())
		want := "a valid value"
		if t, ok := typeAt(key); ok {
			want = describeType(t)
		}
		ps = append(ps, problem(key, "%s is not %s", showValue(valueAt(settings, key)), want))
	}
	walk(err)
	return ps
}

// decodeKey turns mapstructure's "consent.regions[de].default" into our
// "consent.regions.de.default"; list indexes stay: "cmp_cookies[0].name".
func decodeKey(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		if name[i] == '[' {
			end := strings.IndexByte(name[i:], ']')
			if end < 0 {
				b.WriteString(name[i:])
				break
			}
			idx := name[i+1 : i+end]
			if _, err := strconv.Atoi(idx); err == nil {
				b.WriteString(name[i : i+end+1])
			} else {
				b.WriteString("." + idx)
			}
			i += end
			continue
		}
		b.WriteByte(name[i])
	}
	return b.String()
}

// segments splits "a.b[0].c" into a, b, [0], c.
func segments(key string) []string {
	var out []string
	for part := range strings.SplitSeq(key, ".") {
		for {
			i := strings.IndexByte(part, '[')
			if i < 0 {
				break
			}
			if i > 0 {
				out = append(out, part[:i])
			}
			end := strings.IndexByte(part, ']')
			if end < i {
				break
			}
			out = append(out, part[i:end+1])
			part = part[end+1:]
		}
		if part != "" {
			out = append(out, part)
		}
	}
	return out
}

// typeAt is the Go type of key in the file struct.
func typeAt(key string) (reflect.Type, bool) {
	t := reflect.TypeFor[file]()
	for _, s := range segments(key) {
		switch t.Kind() {
		case reflect.Struct:
			f, ok := fieldByTag(t, s)
			if !ok {
				return nil, false
			}
			t = f.Type
		case reflect.Map, reflect.Slice:
			t = t.Elem()
		default:
			return nil, false
		}
	}
	return t, true
}

// valueAt is the raw value of key in the merged settings.
func valueAt(settings map[string]any, key string) any {
	var v any = settings
	for _, s := range segments(key) {
		switch x := v.(type) {
		case map[string]any:
			v = x[s]
		case []any:
			i, err := strconv.Atoi(strings.Trim(s, "[]"))
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func showValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "the value"
	case string:
		return strconv.Quote(x)
	case []any, map[string]any:
		b, _ := yaml.Marshal(x) // plain maps and lists always marshal
		return strconv.Quote(string(bytes.TrimSpace(b)))
	}
	return fmt.Sprint(v)
}

var durationType = reflect.TypeFor[time.Duration]()

// describeType says in words which values a key of type t takes.
func describeType(t reflect.Type) string {
	if t == durationType {
		return "a duration such as 250ms, 5s, 1m or 1h"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64:
		return "a whole number"
	case reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(describeType(t.Elem()), "a "), "an ") + "s"
	case reflect.Map, reflect.Struct:
		return "a mapping of keys to values"
	}
	return "a " + t.String()
}

// restoreDefaults puts the default value back into every field of f that
// failed to decode, so that validation judges the rest without follow-on
// errors about the broken one.
func restoreDefaults(f, def *file, keys []string) {
	for _, key := range keys {
		dst, src := reflect.ValueOf(f).Elem(), reflect.ValueOf(def).Elem()
		for _, s := range segments(key) {
			if dst.Kind() != reflect.Struct {
				break
			}
			fd, ok := fieldByTag(dst.Type(), s)
			if !ok {
				break
			}
			dst, src = dst.FieldByIndex(fd.Index), src.FieldByIndex(fd.Index)
		}
		if dst.CanSet() {
			dst.Set(src)
		}
	}
}

// yamlLine matches the "line N: what" of a YAML parser's messages.
var yamlLine = regexp.MustCompile(`line (\d+): (.*)`)

// yamlProblems turns a file that is not valid YAML into one problem per
// message of the parser, each with its line. err is viper's error, used
// only when the parser itself accepts the file.
func yamlProblems(path string, b []byte, err error) []error {
	var m map[string]any
	perr := yaml.Unmarshal(b, &m)
	if perr == nil {
		return []error{&Problem{Source: path, Msg: err.Error()}}
	}
	msgs := []string{perr.Error()}
	var te *yaml.TypeError
	if errors.As(perr, &te) {
		msgs = te.Errors
	}
	var ps []error
	for _, m := range msgs {
		p := &Problem{Source: path, Msg: "not valid YAML: " + strings.TrimPrefix(m, "yaml: ")}
		if sm := yamlLine.FindStringSubmatch(m); sm != nil {
			p.line, _ = strconv.Atoi(sm[1])
			p.Source = fmt.Sprintf("%s:%d", path, p.line)
			p.Msg = "not valid YAML: " + sm[2]
		}
		ps = append(ps, p)
	}
	return ps
}
