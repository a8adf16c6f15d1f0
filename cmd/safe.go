package cmd

import (
	"fmt"
	"io"
	"os"
	"unicode/utf8"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/hafeed/hafeed/internal/termsafe"
)

// What hafeed prints may quote HAProxy's runtime replies and errors, server
// names, the application's load endpoint, file names: text from elsewhere.
// Rather than cleaning each such field, newRootCmd installs one
// termsafe.Writer on stdout and one on stderr, so that every byte printed
// loses the escape sequences and control characters a terminal would act
// on. hafeed's own colours and progress bar pass as termsafe stand-ins
// (trusted). Table rows are made single lines (termsafe.Line) where they
// are formatted, so that a newline in a value cannot fake a row.

// trusted returns what to print for hafeed's own escape sequence seq on w:
// a stand-in the root's writer turns back into seq, or seq itself on a
// writer that does not strip.
func trusted(w io.Writer, seq string) string {
	if sw, ok := w.(*termsafe.Writer); ok {
		return sw.Trusted(seq)
	}
	return seq
}

// isTerminal reports whether w, or the writer the root's writer wraps, is
// a terminal.
func isTerminal(w io.Writer) bool {
	if sw, ok := w.(*termsafe.Writer); ok {
		w = sw.Unwrap()
	}
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

// flushOutputs writes what the root's writers hold back, such as the start
// of a UTF-8 character cut off at the end.
func flushOutputs(root *cobra.Command) {
	for _, w := range []io.Writer{root.OutOrStdout(), root.ErrOrStderr()} {
		if sw, ok := w.(*termsafe.Writer); ok {
			sw.Flush()
		}
	}
}

// escapeJSON writes the characters in encoded JSON that a terminal acts on
// and encoding/json leaves as they are — DEL, the C1 controls and the
// bidirectional overrides and isolates — as \u escapes, so that the root's
// writer passes JSON through byte for byte and the values stay the same.
// Outside strings JSON holds only ASCII, so every such character is inside
// a string. encoding/json already escapes the C0 controls.
func escapeJSON(in []byte) []byte {
	var out []byte
	for i := 0; i < len(in); {
		r, size := utf8.DecodeRune(in[i:])
		if r == 0x7f || r >= 0x80 && r <= 0x9f || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 {
			if out == nil {
				out = append(make([]byte, 0, len(in)+16), in[:i]...)
			}
			out = fmt.Appendf(out, `\u%04x`, r)
		} else if out != nil {
			out = append(out, in[i:i+size]...)
		}
		i += size
	}
	if out == nil {
		return in
	}
	return out
}
