package termsafe

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// writeSplit writes in to a new Writer in pieces cut at cuts, flushes it
// and returns what came out.
func writeSplit(t *testing.T, in string, cuts []int) string {
	t.Helper()
	var out bytes.Buffer
	w := NewWriter(&out)
	last := 0
	for _, c := range append(cuts, len(in)) {
		if n, err := w.Write([]byte(in[last:c])); err != nil || n != c-last {
			t.Fatalf("Write(%q) = %d, %v", in[last:c], n, err)
		}
		last = c
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// writerCases are the inputs of TestText and the fuzz seeds, with what
// Text makes of them.
var writerCases = []string{
	"admin state ready", "a\tb\nc\n", "", "drain → ready, 50 % é 日本",
	"\x1b]0;owned\x07\x1b[2Jready", "a\x1b]0;title\x1b\\b", "\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\",
	"ok\x1b]0;title", "a\x1b]0;t\x1b[31mb", "\x1b[1;31mred\x1b[0m", "\x1b[?1049hscreen", "x\x1b[1A\x1b[2Ky",
	"a\x1b[12\nb", "a\x1b[1é", "a\x1bcb", "a\x1b(0b", "a\x1b", "a\x1bPq#0;2;0;0;0\x1b\\b", "a\x1b_payload\x07b",
	"a\u009b2Jb", "a\u009d0;t\u009cb", "a\u0085b", "fake\roverwritten", "a\bb\x07c", "a\x00b\x7fc", "a\vb\fc",
	"user\u202etxt.exe", "a\u2066b\u2069c", "a\xffb\xc3", "a\x9b2Jb", "a\xe2\x82", "\x1b]x\xe2\xc2\x9cy",
	"\x1b]x\xc2\xc2\x9cy", "\x1b]x\xc2\x1b[1my", "\x1b(\x85z", "\ue000\ue000a", "x\ue0001234",
}

// TestWriterIsText checks that the Writer prints what Text returns, however
// the input is cut into writes: whole, byte by byte, and at every single
// cut.
func TestWriterIsText(t *testing.T) {
	t.Parallel()
	for _, in := range writerCases {
		want := Text(in)
		if got := writeSplit(t, in, nil); got != want {
			t.Errorf("Writer(%q) = %q, want Text's %q", in, got, want)
		}
		var every []int
		for i := 1; i < len(in); i++ {
			every = append(every, i)
			if got := writeSplit(t, in, []int{i}); got != want {
				t.Errorf("Writer(%q) cut at %d = %q, want Text's %q", in, i, got, want)
			}
		}
		if got := writeSplit(t, in, every); got != want {
			t.Errorf("Writer(%q) byte by byte = %q, want Text's %q", in, got, want)
		}
	}
}

// TestWriterIsTextOnRandomInput compares the Writer with Text on random
// mixes of escapes, controls and text cut at random places.
func TestWriterIsTextOnRandomInput(t *testing.T) {
	t.Parallel()
	parts := []string{"\x1b", "[", "]", "P", "\\", "\x07", "1", ";", "m", "a", "é", "\xc2", "\x9c", "\x9b",
		"\u009b", "\u009d", "\u009c", "\n", "\r", "\t", "(", " ", "\xff", "\u202e", "\xe2", "\x82", "\ue000"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteString(parts[rng.IntN(len(parts))])
		}
		in := b.String()
		var cuts []int
		for i := 1; i < len(in); i++ {
			if rng.IntN(3) == 0 {
				cuts = append(cuts, i)
			}
		}
		if got, want := writeSplit(t, in, cuts), Text(in); got != want {
			t.Fatalf("Writer(%q) cut at %v = %q, want Text's %q", in, cuts, got, want)
		}
	}
}

// TestWriterTrusted checks that the program's own sequences come out as
// they are, through Line too, while the same sequences and forged
// stand-ins in text do not.
func TestWriterTrusted(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	w := NewWriter(&out)
	red, reset := w.Trusted("\x1b[31m"), w.Trusted("\x1b[0m")
	if again := w.Trusted("\x1b[31m"); again != red {
		t.Errorf("Trusted gave %q, then %q for the same sequence", red, again)
	}
	if red == reset {
		t.Fatalf("Trusted gave %q for two sequences", red)
	}
	forged := string(keyStart) + "0000000000000000a"
	text := "\x1b[32mfake\x1b[0m" + forged + red[:len(red)-1] + "z"
	line := Line("error: " + red + text + reset)
	// Byte by byte, so that every stand-in is split.
	for i := range len(line) {
		w.Write([]byte{line[i]})
	}
	w.Flush()
	want := "error: \x1b[31mfake" + forged + red[:len(red)-1] + "z\x1b[0m"
	if out.String() != want {
		t.Errorf("Writer printed %q, want %q", out.String(), want)
	}
}

// TestWriterReportsTheUnderlyingError checks that a failed write is not
// reported as done.
func TestWriterReportsTheUnderlyingError(t *testing.T) {
	t.Parallel()
	w := NewWriter(failingWriter{})
	if n, err := w.Write([]byte("text")); err == nil || n != 0 {
		t.Errorf("Write to a failing writer = %d, %v; want 0 and the error", n, err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errFailed }

var errFailed = errors.New("write failed")

func FuzzWriter(f *testing.F) {
	for _, s := range writerCases {
		f.Add(s, uint8(3))
	}
	f.Fuzz(func(t *testing.T, in string, step uint8) {
		var cuts []int
		for i := int(step%7) + 1; i < len(in); i += int(step%7) + 1 {
			cuts = append(cuts, i)
		}
		if got, want := writeSplit(t, in, cuts), Text(in); got != want {
			t.Fatalf("Writer(%q) cut at %v = %q, want Text's %q", in, cuts, got, want)
		}
	})
}
