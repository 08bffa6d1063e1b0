package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

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
	// LogFormat is the log.format the configuration asks for, when that
	// key itself is valid ("" otherwise), so that the command can log
	// this error in the format the operator chose.
	LogFormat string
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
	lines map[string]int    // key → line in the file
	env   map[string]string // key → the environment variable that set it
}

// locate fills in where p's value came from: the environment variable
// that set it, else the closest line of the file, else the defaults.
func (l *locator) locate(p *Problem) {
	if p.Source != "" {
		return
	}
	if p.Key == "" {
		p.Source = l.name()
		if p.line > 0 {
			p.Source = fmt.Sprintf("%s:%d", l.path, p.line)
		}
		return
	}
	src, line := l.find(p.Key)
	p.Source, p.line, p.env = src, line, strings.HasPrefix(src, "environment")
}

// origin says where the effective value of key came from: "environment
// variable NAME", "file:line" or "default". Unlike a problem's source it
// does not climb to a section the file mentions: with consent: {mode:
// basic} in the file, consent.enforce is still a default. It climbs only
// to a list element or a map entry, which the file sets as a whole.
func (l *locator) origin(key string) string {
	if name, ok := l.env[key]; ok {
		return "environment variable " + name
	}
	for k := strings.ToLower(key); k != ""; k = parentKey(k) {
		if k != strings.ToLower(key) && !wholeEntry(k) {
			break
		}
		if line, ok := l.lines[k]; ok {
			return fmt.Sprintf("%s:%d", l.path, line)
		}
	}
	return "default"
}

// wholeEntry reports whether key is a list element or a map entry
// ("consent.cmp_cookies[0]", "consent.regions.de").
func wholeEntry(key string) bool {
	if strings.HasSuffix(key, "]") {
		return true
	}
	t, ok := typeAt(parentKey(key))
	return ok && t.Kind() == reflect.Map
}

func (l *locator) find(key string) (string, int) {
	for k := key; k != ""; k = parentKey(k) {
		if name, ok := l.env[k]; ok {
			return "environment variable " + name, 0
		}
	}
	for k := strings.ToLower(key); k != ""; k = parentKey(k) {
		if line, ok := l.lines[k]; ok {
			return fmt.Sprintf("%s:%d", l.path, line), line
		}
	}
	return "default", 0
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

// yamlLine matches the "line N: what" of a YAML parser's messages.
var yamlLine = regexp.MustCompile(`line (\d+): (.*)`)

// yamlProblems turns the parser's error for a file that is not valid
// YAML into one problem per message, each with its line.
func yamlProblems(path string, perr error) []error {
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
