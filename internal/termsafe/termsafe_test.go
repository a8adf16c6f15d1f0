package termsafe

import (
	"strings"
	"testing"
	"unicode/utf8"
	"unsafe"
)

func TestText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"plain", "admin state ready", "admin state ready"},
		{"lines and tabs kept", "a\tb\nc\n", "a\tb\nc\n"},
		{"empty", "", ""},
		{"unicode kept", "drain → ready, 50 % é 日本", "drain → ready, 50 % é 日本"},
		// The reply from issue 11, item 10: retitle the window, clear the screen.
		{"osc title and clear", "\x1b]0;owned\x07\x1b[2Jready", "ready"},
		{"osc ended by ST", "a\x1b]0;title\x1b\\b", "ab"},
		{"osc 8 hyperlink", "\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\", "click"},
		{"unterminated osc swallows the rest", "ok\x1b]0;title", "ok"},
		{"osc cut short by another escape", "a\x1b]0;t\x1b[31mb", "ab"},
		{"csi colour", "\x1b[1;31mred\x1b[0m", "red"},
		{"csi private mode", "\x1b[?1049hscreen", "screen"},
		{"csi cursor up and erase line", "x\x1b[1A\x1b[2Ky", "xy"},
		{"csi cut by a control", "a\x1b[12\nb", "a\nb"},
		{"csi with a non-ascii byte", "a\x1b[1é", "aé"},
		{"two-byte escape: reset", "a\x1bcb", "ab"},
		{"escape with intermediate: charset", "a\x1b(0b", "ab"},
		{"escape at the end", "a\x1b", "a"},
		{"dcs", "a\x1bPq#0;2;0;0;0\x1b\\b", "ab"},
		{"apc", "a\x1b_payload\x07b", "ab"},
		{"c1 csi", "a\u009b2Jb", "ab"},
		{"c1 osc ended by c1 st", "a\u009d0;t\u009cb", "ab"},
		{"c1 next line", "a\u0085b", "ab"},
		{"carriage return", "fake\roverwritten", "fakeoverwritten"},
		{"backspace and bell", "a\bb\x07c", "abc"},
		{"nul and del", "a\x00b\x7fc", "abc"},
		{"vertical tab and form feed", "a\vb\fc", "abc"},
		{"bidi override", "user\u202etxt.exe", "usertxt.exe"},
		{"bidi isolate", "a\u2066b\u2069c", "abc"},
		{"invalid utf-8", "a\xffb\xc3", "a\ufffdb\ufffd"},
		{"raw 8-bit csi byte", "a\x9b2Jb", "a\ufffd2Jb"},
	}
	for _, tt := range tests {
		if got := Text(tt.in); got != tt.want {
			t.Errorf("%s: Text(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
}

func TestLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"plain", "Unknown command", "Unknown command"},
		{"newline is a space", "No such server.\nsecond line", "No such server. second line"},
		{"crlf", "a\r\nb", "a  b"},
		{"tab is a space", "a\tb", "a b"},
		{"escape removed", "\x1b]0;x\x07\x1b[2Jdrain", "drain"},
	}
	for _, tt := range tests {
		if got := Line(tt.in); got != tt.want {
			t.Errorf("%s: Line(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
}

// TestTextReturnsSafeInputAsIs checks the fast path hands back s itself.
func TestTextReturnsSafeInputAsIs(t *testing.T) {
	in := strings.Repeat("weight 50 (initial 100)\n", 10)
	if got := Text(in); unsafe.StringData(got) != unsafe.StringData(in) {
		t.Errorf("Text(safe input) copied or changed it")
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = Text(in) }); allocs != 0 {
		t.Errorf("Text(safe input) allocates %v times, want 0", allocs)
	}
}

// checkSafe fails when out holds anything a terminal could act on.
func checkSafe(t *testing.T, fn, in, out string, line bool) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Fatalf("%s(%q) = %q: not valid UTF-8", fn, in, out)
	}
	for _, r := range out {
		allowed := !line && (r == '\n' || r == '\t')
		if !allowed && dropped(r) {
			t.Fatalf("%s(%q) = %q: holds %U", fn, in, out, r)
		}
	}
}

func FuzzText(f *testing.F) {
	for _, s := range []string{
		"ready", "a\tb\nc", "\x1b]0;owned\x07\x1b[2Jready", "\x1b[1;31mred\x1b[0m",
		"\u009b2J\u009d0;t\u009c", "a\xffb", "\x1bP\x1b\\", "\x1b", "\u202e", "a\r\nb",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		for _, c := range []struct {
			name string
			fn   func(string) string
			line bool
		}{{"Text", Text, false}, {"Line", Line, true}} {
			out := c.fn(in)
			checkSafe(t, c.name, in, out, c.line)
			if again := c.fn(out); again != out {
				t.Fatalf("%s is not idempotent: %q → %q → %q", c.name, in, out, again)
			}
			if isSafe(in, c.line) && out != in {
				t.Fatalf("%s(%q) = %q changed safe text", c.name, in, out)
			}
		}
	})
}
