// Package consolelog makes zerolog's console output easy to read: numbers
// rounded to what a person reads and durations to three significant digits
// ("took=4.78ms", not "took=0.004777839"). JSON logs keep full precision.
package consolelog

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
)

// Round is a zerolog.ConsoleWriter FormatPrepare: it rounds the event's
// fractional numbers to four significant digits and its durations (the
// strings zerolog.DurationFormatString writes) to three.
func Round(evt map[string]any) error {
	for k, v := range evt {
		switch v := v.(type) {
		case json.Number:
			evt[k] = json.Number(roundNumber(string(v)))
		case string:
			if d, err := time.ParseDuration(v); err == nil && strings.ContainsAny(v, "0123456789") {
				evt[k] = roundDuration(d).String()
			}
		}
	}
	return nil
}

// roundNumber rounds a decimal with a fraction to four significant digits,
// without trailing zeros; integers and anything unparsable stay as they are.
func roundNumber(s string) string {
	if !strings.ContainsAny(s, ".eE") {
		return s
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f == 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return s
	}
	decimals := max(0, 3-int(math.Floor(math.Log10(math.Abs(f)))))
	out := strconv.FormatFloat(f, 'f', decimals, 64)
	if strings.Contains(out, ".") {
		out = strings.TrimRight(strings.TrimRight(out, "0"), ".")
	}
	return out
}

// roundDuration keeps three significant digits: 4.777839ms -> 4.78ms.
func roundDuration(d time.Duration) time.Duration {
	unit := time.Duration(1)
	for unit*1000 <= d || unit*1000 <= -d {
		unit *= 10
	}
	return d.Round(unit)
}
