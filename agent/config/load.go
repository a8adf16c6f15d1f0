package config

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Error is one problem with a configuration, located in its file.
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	if e.Key != "" {
		b.WriteString(": " + e.Key)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// Load reads a YAML file over the defaults. Unknown keys, values of the
// wrong type and invalid values are all reported at once, each naming the
// file, the line and the key. On error the returned Config still holds
// every value that could be decoded, over the defaults, for callers that
// only need one key (the CLI's client commands need control_socket).
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Default(), fmt.Errorf("reading config: %w", err)
	}
	return Parse(path, data)
}

// Parse is Load for bytes already read; name labels errors.
func Parse(name string, data []byte) (Config, error) {
	cfg := Default()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return cfg, syntaxError(name, data, err)
	}
	if len(doc.Content) == 0 {
		return cfg, cfg.validate(name, nil) // an empty file means defaults
	}
	root := doc.Content[0]
	d := decoder{file: name}
	d.decode(root, reflect.ValueOf(&cfg).Elem(), "")
	// A value that could not be decoded keeps its default, so validating
	// the rest finds the other problems of the same file.
	if err := cfg.validate(name, root); err != nil {
		d.errs = append(d.errs, err)
	}
	return cfg, inLineOrder(d.errs)
}

// inLineOrder joins errors, *Error ones (also inside joined errors) sorted
// by line, those without a line last, so that a report reads down the file.
func inLineOrder(errs []error) error {
	var flat []error
	var walk func(err error)
	walk = func(err error) {
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range joined.Unwrap() {
				walk(e)
			}
			return
		}
		flat = append(flat, err)
	}
	for _, err := range errs {
		walk(err)
	}
	line := func(err error) int {
		var ce *Error
		if errors.As(err, &ce) && ce.Line > 0 {
			return ce.Line
		}
		return math.MaxInt
	}
	slices.SortStableFunc(flat, func(a, b error) int { return cmp.Compare(line(a), line(b)) })
	return errors.Join(flat...)
}

// syntaxError locates a YAML syntax error. yaml's own text repeats the
// line ("line 2: found character that cannot start any token") and says
// nothing of the usual cause, a tab in the indentation: that one is named.
func syntaxError(name string, data []byte, err error) *Error {
	line := yamlErrorLine(err)
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, fmt.Sprintf("line %d: ", line)); ok {
		msg = rest
	}
	if strings.Contains(msg, "tab character") || strings.Contains(msg, "cannot start any token") {
		if tab := tabIndentedLine(data, line); tab > 0 {
			return &Error{File: name, Line: tab, Msg: "indented with a tab: YAML indents with spaces only, replace the tab with spaces"}
		}
	}
	return &Error{File: name, Line: line, Msg: msg}
}

// tabIndentedLine is the first line from near line on (yaml may name the
// line before) whose indentation holds a tab, else the first in the whole
// file; 0 if none.
func tabIndentedLine(data []byte, near int) int {
	lines := strings.Split(string(data), "\n")
	indentedWithTab := func(l string) bool {
		indent := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
		return strings.Contains(indent, "\t")
	}
	for i := max(near-2, 0); i < len(lines); i++ {
		if indentedWithTab(lines[i]) {
			return i + 1
		}
	}
	for i, l := range lines {
		if indentedWithTab(l) {
			return i + 1
		}
	}
	return 0
}

// decoder sets a Config from a YAML tree key by key, so that an unknown key
// or a value of the wrong type is reported with its key and line, and the
// keys after it are still read.
type decoder struct {
	file string
	errs []error
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: n.Line, Key: strings.TrimPrefix(path, "."), Msg: fmt.Sprintf(format, args...)})
}

var durationType = reflect.TypeOf(time.Duration(0))

// decode sets v from n; path is the dotted key of n, for messages.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty key keeps its default
	}
	switch {
	case v.Type() == durationType:
		d.scalar(n, v, path)
	case v.Kind() == reflect.Struct:
		d.mapping(n, v, path)
	case v.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "must be a list, for example %s: [...]", lastKey(path))
			return
		}
		s := reflect.MakeSlice(v.Type(), 0, len(n.Content))
		for i, item := range n.Content {
			elem := reflect.New(v.Type().Elem()).Elem()
			before := len(d.errs)
			d.decode(item, elem, fmt.Sprintf("%s[%d]", path, i))
			if len(d.errs) == before {
				s = reflect.Append(s, elem)
			}
		}
		v.Set(s)
	case v.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.fail(n, path, "must be a mapping of keys")
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if d.duplicate(seen, k, path+"."+k.Value) {
				continue
			}
			elem := reflect.New(v.Type().Elem()).Elem()
			before := len(d.errs)
			d.decode(val, elem, path+"."+k.Value)
			if len(d.errs) == before {
				m.SetMapIndex(reflect.ValueOf(k.Value), elem)
			}
		}
		v.Set(m)
	default:
		d.scalar(n, v, path)
	}
}

// duplicate reports a key given twice in one mapping, naming both lines:
// YAML would keep the last one silently. seen maps the keys met so far to
// their lines.
func (d *decoder) duplicate(seen map[string]int, k *yaml.Node, path string) bool {
	if first, ok := seen[k.Value]; ok {
		d.fail(k, path, "given twice, at lines %d and %d: keep one", first, k.Line)
		return true
	}
	seen[k.Value] = k.Line
	return false
}

// mapping sets the fields of struct v from the mapping n.
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "must be a mapping of keys")
		return
	}
	t := v.Type()
	fields := map[string]int{}
	var known []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = i
		known = append(known, name)
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Tag == "!!merge" { // <<: *anchor merges a mapping's keys here
			merged := []*yaml.Node{val}
			if val.Kind == yaml.SequenceNode {
				merged = val.Content
			}
			for _, m := range merged {
				d.decode(m, v, path)
			}
			continue
		}
		key := path + "." + k.Value
		if d.duplicate(seen, k, key) {
			continue
		}
		f, ok := fields[k.Value]
		if !ok {
			d.fail(k, key, "unknown key; known keys here: %s", strings.Join(known, ", "))
			continue
		}
		d.decode(val, v.Field(f), key)
	}
}

// scalar sets v from a scalar node, saying what was expected when the
// value has the wrong type.
func (d *decoder) scalar(n *yaml.Node, v reflect.Value, path string) {
	want := expected(v.Type())
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "must be %s, not a %s", want, kindName(n.Kind))
		return
	}
	tmp := reflect.New(v.Type())
	if err := n.Decode(tmp.Interface()); err != nil {
		d.fail(n, path, "%q is not %s", n.Value, want)
		return
	}
	v.Set(tmp.Elem())
}

// expected describes the values a Go type accepts, with an example.
func expected(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration, e.g. 1s or 500ms"
	case t.Kind() == reflect.Uint16:
		return "a port number (1-65535)"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		return "a whole number, e.g. 10"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "a number, e.g. 0.5"
	}
	return "a " + t.String()
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "value"
}

func lastKey(path string) string {
	if i := strings.LastIndex(path, "."); i >= 0 {
		return path[i+1:]
	}
	return path
}

func yamlErrorLine(err error) int {
	msg := err.Error()
	if i := strings.Index(msg, "line "); i >= 0 {
		digits := strings.FieldsFunc(msg[i+5:], func(r rune) bool { return r < '0' || r > '9' })
		if len(digits) > 0 {
			n, _ := strconv.Atoi(digits[0])
			return n
		}
	}
	return 0
}
