package termsafe

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"strings"
	"unicode/utf8"
)

// Writer passes what is written to it on to another writer without escape
// sequences and control characters, as Text does, so that a program can
// make every byte it prints safe in one place. A sequence or a UTF-8
// character may be split across Write calls; the state between them is
// kept. The program's own sequences (colours, a progress bar) go through
// stand-ins from Trusted.
type Writer struct {
	w     io.Writer
	state state
	// pending holds the first bytes of a UTF-8 character whose rest is
	// still to come.
	pending []byte
	// key starts every stand-in Trusted hands out; matched holds the bytes
	// of a stand-in seen so far.
	key     string
	trusted []string
	matched []byte
	out     []byte
}

// state says where the writer stands in an escape sequence.
type state int

const (
	stText      state = iota
	stEscape          // after ESC
	stEscInter        // in "ESC intermediates* final"
	stCSI             // in a control sequence
	stString          // in an OSC, DCS, SOS, PM or APC string
	stStringEsc       // after ESC in a string: "ESC \" ends it
	stStringC2        // after the first byte of a UTF-8 encoded C1 control in a string
)

// keyStart is the private-use character every stand-in starts with.
const keyStart = '\uE000'

// NewWriter returns a Writer that writes to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Unwrap returns the writer w writes to, to ask whether it is a terminal.
func (w *Writer) Unwrap() io.Writer { return w.w }

// Trusted returns a stand-in for seq, one of the program's own escape
// sequences: written to w, the stand-in comes out as seq, while every
// escape sequence in what is written around it is removed. A stand-in
// holds a random key of w's, so text from elsewhere cannot forge one; it
// is printable, so Line and Text leave it as it is. A Writer holds 26
// sequences at most.
func (w *Writer) Trusted(seq string) string {
	if w.key == "" {
		var random [8]byte
		rand.Read(random[:])
		w.key = string(keyStart) + hex.EncodeToString(random[:])
	}
	i := -1
	for j, s := range w.trusted {
		if s == seq {
			i = j
		}
	}
	if i < 0 {
		if len(w.trusted) == 26 {
			panic("termsafe: more than 26 trusted sequences")
		}
		i = len(w.trusted)
		w.trusted = append(w.trusted, seq)
	}
	return w.key + string(rune('a'+i))
}

// Write writes p without its escape sequences and control characters. It
// reports len(p) unless the underlying writer fails.
func (w *Writer) Write(p []byte) (int, error) {
	w.out = w.out[:0]
	for _, b := range p {
		w.byte(b)
	}
	if err := w.emit(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes what is held back for the next Write: an incomplete UTF-8
// character becomes U+FFFD, as Text makes it, and the start of a
// stand-in is written as the text it is. An unterminated escape sequence
// stays swallowed.
func (w *Writer) Flush() error {
	w.out = w.out[:0]
	for len(w.pending) > 0 {
		w.out = append(w.out, string(utf8.RuneError)...)
		w.pending = w.pending[1:]
	}
	w.out = append(w.out, w.matched...)
	w.matched = w.matched[:0]
	return w.emit()
}

func (w *Writer) emit() error {
	if len(w.out) == 0 {
		return nil
	}
	_, err := w.w.Write(w.out)
	return err
}

// byte takes one byte, as clean reads it in its context.
func (w *Writer) byte(b byte) {
	switch w.state {
	case stText:
		w.pending = append(w.pending, b)
		if !utf8.FullRune(w.pending) {
			return
		}
		r, size := utf8.DecodeRune(w.pending)
		var raw [utf8.UTFMax]byte
		n := copy(raw[:], w.pending[:size])
		rest := append([]byte(nil), w.pending[size:]...)
		w.pending = w.pending[:0]
		w.rune(r, raw[:n])
		for _, b := range rest {
			w.byte(b)
		}
	case stEscape:
		switch {
		case b == '[':
			w.state = stCSI
		case b == ']' || b == 'P' || b == 'X' || b == '^' || b == '_':
			w.state = stString
		case b >= 0x20 && b <= 0x2f:
			w.state = stEscInter
		case b >= 0x30 && b <= 0x7e:
			w.state = stText
		default:
			w.state = stText
			w.byte(b)
		}
	case stEscInter:
		switch {
		case b >= 0x20 && b <= 0x2f:
		case b >= 0x30 && b <= 0x7e:
			w.state = stText
		default:
			w.state = stText
			w.byte(b)
		}
	case stCSI:
		switch {
		case b >= 0x20 && b <= 0x3f:
		case b >= 0x40 && b <= 0x7e:
			w.state = stText
		default:
			w.state = stText
			w.byte(b)
		}
	case stString:
		switch b {
		case bel:
			w.state = stText
		case esc:
			w.state = stStringEsc
		case 0xc2: // U+009C, the C1 ST, is C2 9C in UTF-8
			w.state = stStringC2
		}
	case stStringEsc:
		if b == '\\' {
			w.state = stText
			return
		}
		// Another sequence starts at that ESC.
		w.state = stEscape
		w.byte(b)
	case stStringC2:
		if b == 0x9c {
			w.state = stText
			return
		}
		w.state = stString
		w.byte(b)
	}
}

// rune takes a whole character, or an invalid byte, read as text.
func (w *Writer) rune(r rune, raw []byte) {
	if r == utf8.RuneError && len(raw) == 1 {
		w.unmatch()
		w.out = append(w.out, string(utf8.RuneError)...)
		return
	}
	if w.match(r, raw) {
		return
	}
	switch {
	case r == esc:
		w.state = stEscape
	case r == c1CSI:
		w.state = stCSI
	case r == c1OSC, r == c1DCS, r == c1SOS, r == c1PM, r == c1APC:
		w.state = stString
	case r == '\n' || r == '\t':
		w.out = append(w.out, raw...)
	case dropped(r):
	default:
		w.out = append(w.out, raw...)
	}
}

// match reports whether r continues a stand-in, writing its sequence once
// the stand-in is whole. A stand-in that breaks off is written as text.
func (w *Writer) match(r rune, raw []byte) bool {
	if w.key == "" {
		return false
	}
	if len(w.matched) == 0 {
		if r != keyStart {
			return false
		}
		w.matched = append(w.matched, raw...)
		return true
	}
	if len(w.matched) == len(w.key) {
		if i := int(r - 'a'); i >= 0 && i < len(w.trusted) {
			w.out = append(w.out, w.trusted[i]...)
			w.matched = w.matched[:0]
			return true
		}
	} else if strings.HasPrefix(w.key[len(w.matched):], string(raw)) {
		w.matched = append(w.matched, raw...)
		return true
	}
	w.unmatch()
	return w.match(r, raw)
}

// unmatch writes the start of a stand-in that broke off as the text it is:
// the private-use character and hexadecimal digits.
func (w *Writer) unmatch() {
	w.out = append(w.out, w.matched...)
	w.matched = w.matched[:0]
}
