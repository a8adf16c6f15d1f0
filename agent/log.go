package agent

import (
	"io"
	"os"
	"sync/atomic"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/hafeed/hafeed/agent/config"
	"github.com/hafeed/hafeed/internal/consolelog"
)

// NewLogger builds the process logger from the log settings: JSON for
// journald and files, console text on a terminal. The filter changes the
// level later.
func NewLogger(cfg config.LogConfig, w io.Writer) (zerolog.Logger, *LevelFilter, error) {
	level, err := config.ParseLevel(cfg.Level)
	if err != nil {
		return zerolog.Nop(), nil, err
	}
	terminal := false
	if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		terminal = true
	}
	format := cfg.Format
	if format == "auto" || format == "" {
		format = "json"
		if terminal {
			format = "console"
		}
	}
	if format == "console" {
		// Colour codes only on a terminal: in a file or a pipe they are
		// noise that grep and less show as such.
		noColor := !terminal || os.Getenv("NO_COLOR") != ""
		w = zerolog.ConsoleWriter{Out: w, NoColor: noColor, TimeFormat: "15:04:05.000", FormatPrepare: consolelog.Round}
	}
	filter := &LevelFilter{w: zerolog.LevelWriterAdapter{Writer: w}}
	filter.Set(level)
	if format == "json" && os.Getenv("JOURNAL_STREAM") != "" {
		// journald stamps every line itself.
		return zerolog.New(filter), filter, nil
	}
	return zerolog.New(filter).With().Timestamp().Logger(), filter, nil
}

// LevelFilter is a zerolog writer whose minimum level can change while the
// agent runs, so that a reload can turn on debug logs.
type LevelFilter struct {
	w     zerolog.LevelWriter
	level atomic.Int32
}

// Set changes the minimum level written.
func (f *LevelFilter) Set(l zerolog.Level) { f.level.Store(int32(l)) }

func (f *LevelFilter) Write(p []byte) (int, error) { return f.w.Write(p) }

// WriteLevel implements zerolog.LevelWriter.
func (f *LevelFilter) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	if l < zerolog.Level(f.level.Load()) {
		return len(p), nil
	}
	return f.w.WriteLevel(l, p)
}
