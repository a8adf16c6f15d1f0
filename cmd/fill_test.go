package cmd

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/internal/termsafe"
)

// Hostile is text an endpoint could send: OSC, CSI and two-byte escapes,
// C0 and C1 controls, DEL, a bidirectional override, and a newline and a
// tab that would fake a row or a column in a table.
const Hostile = "owned\x1b]0;title\x07\x1b[2J\x1b[31m\x1bc\r\b\x00\x7f\u009b31m\u009d0;t\u009c\u0085\u202e\nFAKE\tcell"

// FillText sets every exported string in v — fields, elements of string
// slices, map keys and values, through pointers, slices and maps of
// structs — to Hostile followed by its path, so that a field added to
// control.Status later is filled without this function changing.
var FillText = fillText

func fillText(v any) { fill(reflect.ValueOf(v).Elem(), "") }

func fill(v reflect.Value, path string) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(Hostile + " " + path)
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fill(v.Elem(), path)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			return
		}
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				fill(v.Field(i), path+"."+f.Name)
			}
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return
		}
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(s.Index(i), path+"[]")
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for i := range 2 {
			k := reflect.New(v.Type().Key()).Elem()
			if k.Kind() == reflect.String {
				k.SetString(strings.Repeat("k", i+1))
				if i == 1 {
					fill(k, path+"{key}")
				}
			}
			e := reflect.New(v.Type().Elem()).Elem()
			fill(e, path+"{}")
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	}
}

// TestFillTextReachesNestedStrings checks the filler itself on the shapes
// control.Status uses.
func TestFillTextReachesNestedStrings(t *testing.T) {
	var st control.Status
	fillText(&st)
	if st.Reply == "" || len(st.HAProxy) == 0 || len(st.HAProxy[0].Servers) == 0 || st.HAProxy[0].Servers[0] == "" ||
		st.Shed == nil || st.Shed.LastError == "" || st.Sample == nil || len(st.Sample.Signals) != 2 || len(st.RestartNeeded) == 0 {
		t.Fatalf("fillText left strings empty: %+v", st)
	}
	for name, sig := range st.Sample.Signals {
		if sig.Error == "" {
			t.Errorf("fillText left the error of signal %q empty", name)
		}
	}
}

// TestColoursPassTheWriterAndNothingElse renders a hostile status as on a
// terminal: hafeed's own colours come out, and once they are taken away
// nothing a terminal acts on is left.
func TestColoursPassTheWriterAndNothingElse(t *testing.T) {
	var st control.Status
	fillText(&st)
	st.Admin = "drain"
	var out bytes.Buffer
	w := termsafe.NewWriter(&out)
	now := time.Now()
	printStatus(w, &st, now, style{on: true, w: w})
	w.Flush()
	got := out.String()
	if !strings.Contains(got, "\x1b[33mdrain\x1b[0m") || !strings.Contains(got, "\x1b[31m") {
		t.Errorf("status on a terminal lost its colours:\n%q", got)
	}
	rest := strings.NewReplacer("\x1b[33m", "", "\x1b[31m", "", "\x1b[32m", "", "\x1b[0m", "").Replace(got)
	CheckTerminalSafe(t, "status on a terminal", rest, false)
	if !strings.Contains(rest, "owned") {
		t.Errorf("status on a terminal dropped the text around the escapes:\n%q", rest)
	}
}

// CheckTerminalSafe fails if out holds an escape, a control character
// other than newline and tab, DEL, a C1 control or a bidirectional
// override, or, unless lines are allowed (an error's text may span
// several), a line that a hostile value started.
func CheckTerminalSafe(t *testing.T, what, out string, lines bool) {
	t.Helper()
	for _, r := range out {
		if r < 0x20 && r != '\n' && r != '\t' || r >= 0x7f && r <= 0x9f || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 {
			t.Errorf("%s printed %U:\n%q", what, r, out)
			return
		}
	}
	for line := range strings.Lines(out) {
		if !lines && strings.HasPrefix(line, "FAKE") {
			t.Errorf("%s let a value start a line of its own:\n%q", what, out)
			return
		}
	}
}
