package termsafe

import (
	"strings"
	"unicode/utf8"
)

// Text returns s without escape sequences and control characters, keeping
// newlines and tabs, for output of several lines. Removed are: ESC and the
// sequence it starts (CSI "ESC [ ... final", OSC "ESC ] ... BEL or ST",
// DCS, SOS, PM and APC strings, two-byte escapes such as "ESC c"); the C1
// controls U+0080–U+009F and the sequences the 8-bit CSI, OSC, DCS, SOS, PM
// and APC start; every other C0 control, carriage return included, and
// DEL; the bidirectional overrides and isolates (U+202A–U+202E,
// U+2066–U+2069) that reorder what is shown. Invalid UTF-8 becomes U+FFFD.
func Text(s string) string { return clean(s, false) }

// Line is Text for a single line, such as a table cell: newlines, carriage
// returns and tabs become one space each, so that the text can neither
// start a line of its own nor shift a tab-aligned column.
func Line(s string) string { return clean(s, true) }

const (
	esc = 0x1b
	bel = 0x07
	// C1 controls, as runes.
	c1DCS = 0x90
	c1SOS = 0x98
	c1CSI = 0x9b
	c1ST  = 0x9c
	c1OSC = 0x9d
	c1PM  = 0x9e
	c1APC = 0x9f
)

func clean(s string, line bool) string {
	if isSafe(s, line) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			b.WriteRune(utf8.RuneError)
			i += size
		case r == esc:
			i = skipEscape(s, i+1)
		case r == c1CSI:
			i = skipCSI(s, i+size)
		case r == c1OSC, r == c1DCS, r == c1SOS, r == c1PM, r == c1APC:
			i = skipString(s, i+size)
		case r == '\n' || r == '\t':
			if line {
				b.WriteByte(' ')
			} else {
				b.WriteRune(r)
			}
			i += size
		case r == '\r' && line:
			b.WriteByte(' ')
			i += size
		case dropped(r):
			i += size
		default:
			b.WriteString(s[i : i+size])
			i += size
		}
	}
	return b.String()
}

// isSafe reports whether s is printable ASCII, plus newline and tab unless
// line is set: the common case, returned as it is.
func isSafe(s string, line bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c < 0x7f || !line && (c == '\n' || c == '\t') {
			continue
		}
		return false
	}
	return true
}

// dropped reports whether r is a control or reordering character that is
// removed on its own (escape sequences are handled before).
func dropped(r rune) bool {
	return r < 0x20 || r >= 0x7f && r <= 0x9f ||
		r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069
}

// skipEscape skips the sequence after an ESC at s[i-1] and returns the
// index after it.
func skipEscape(s string, i int) int {
	if i >= len(s) {
		return i
	}
	switch s[i] {
	case '[':
		return skipCSI(s, i+1)
	case ']', 'P', 'X', '^', '_': // OSC, DCS, SOS, PM, APC: strings up to ST
		return skipString(s, i+1)
	}
	// "ESC intermediates* final": intermediates 0x20–0x2F, final 0x30–0x7E.
	for i < len(s) && s[i] >= 0x20 && s[i] <= 0x2f {
		i++
	}
	if i < len(s) && s[i] >= 0x30 && s[i] <= 0x7e {
		i++
	}
	return i
}

// skipCSI skips a control sequence's parameter (0x30–0x3F) and
// intermediate (0x20–0x2F) bytes and its final byte (0x40–0x7E). A byte
// that fits none ends the sequence and is looked at on its own.
func skipCSI(s string, i int) int {
	for i < len(s) && s[i] >= 0x20 && s[i] <= 0x3f {
		i++
	}
	if i < len(s) && s[i] >= 0x40 && s[i] <= 0x7e {
		i++
	}
	return i
}

// skipString skips an OSC, DCS, SOS, PM or APC string up to and including
// its terminator: BEL, "ESC \" or the C1 ST. An unterminated string runs to
// the end of s, as a terminal would swallow it.
func skipString(s string, i int) int {
	for i < len(s) {
		switch {
		case s[i] == bel:
			return i + 1
		case s[i] == esc:
			if i+1 < len(s) && s[i+1] == '\\' {
				return i + 2
			}
			return i // another sequence starts: let the caller handle it
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == c1ST {
			return i + size
		}
		i += size
	}
	return i
}
