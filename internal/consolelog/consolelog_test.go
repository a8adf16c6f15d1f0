package consolelog

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
)

func TestRound(t *testing.T) {
	evt := map[string]any{
		"utilisation": json.Number("0.42345678912345678"),
		"capacity":    json.Number("12345.678"),
		"rate":        json.Number("50.0"),
		"small":       json.Number("0.004777839"),
		"connections": json.Number("600"),
		"zero":        json.Number("0.0"),
		"took":        "4.777839ms",
		"long":        "1m23.456789s",
		"tiny":        "950ns",
		"reason":      "idle",
		"ms":          "ms",
	}
	if err := Round(evt); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"utilisation": json.Number("0.4235"),
		"capacity":    json.Number("12346"),
		"rate":        json.Number("50"),
		"small":       json.Number("0.004778"),
		"connections": json.Number("600"),
		"zero":        json.Number("0.0"),
		"took":        "4.78ms",
		"long":        "1m23.5s",
		"tiny":        "950ns",
		"reason":      "idle",
		"ms":          "ms",
	}
	if diff := cmp.Diff(want, evt); diff != "" {
		t.Errorf("Round (-want +got):\n%s", diff)
	}
}

// TestConsoleLine checks a whole console line with zerolog's duration
// strings, as the hafeed command configures them.
func TestConsoleLine(t *testing.T) {
	old := zerolog.DurationFieldFormat
	zerolog.DurationFieldFormat = zerolog.DurationFormatString
	defer func() { zerolog.DurationFieldFormat = old }()
	var b bytes.Buffer
	log := zerolog.New(zerolog.ConsoleWriter{Out: &b, NoColor: true, PartsExclude: []string{zerolog.TimestampFieldName}, FormatPrepare: Round})
	log.Info().Float64("utilisation", 0.123456789).Dur("took", 4777839*time.Nanosecond).Msg("sampled load")
	if got, want := b.String(), "INF sampled load took=4.78ms utilisation=0.1235\n"; got != want {
		t.Errorf("console line = %q, want %q", got, want)
	}
}
