package config

import (
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestParseRejectsDuplicateKeys checks that a key given twice in one
// mapping is an error naming both lines (YAML would keep the last one
// silently), at any depth and in free-form maps too.
func TestParseRejectsDuplicateKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml, want string
	}{
		{"top level", "interval: 1s\nlog:\n  level: info\ninterval: 2s\n", "cfg.yaml:4: interval: given twice, at lines 1 and 4: keep one"},
		{"nested", "log:\n  level: info\n  format: json\n  level: debug\n", "cfg.yaml:4: log.level: given twice, at lines 2 and 4: keep one"},
		{"in a list item", "haproxy:\n  - runtime: unix:///a.sock\n    runtime: unix:///b.sock\n", "cfg.yaml:3: haproxy[0].runtime: given twice, at lines 2 and 3"},
		{"in a map", "policy:\n  mix:\n    cpu: 1\n    cpu: 2\n", "cfg.yaml:4: policy.mix.cpu: given twice, at lines 3 and 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("cfg.yaml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	// A key a merge brings in may be given again: that is what merging is for.
	cfg, err := Parse("cfg.yaml", []byte("haproxy:\n  - &lb\n    runtime: unix:///run/a.sock\n    backend: ws\n    server: web1\n  - <<: *lb\n    runtime: unix:///run/b.sock\n"))
	if err != nil || len(cfg.HAProxy) != 2 || cfg.HAProxy[1].Runtime != "unix:///run/b.sock" || cfg.HAProxy[1].Backend != "ws" {
		t.Errorf("Parse() of a merge with an override = %+v, %v; want the second endpoint at b.sock in backend ws", cfg.HAProxy, err)
	}
}

// TestParseExplainsTabs checks that a tab in the indentation is named as
// such, on the line that holds it, instead of yaml's "line 2: line 2:
// found character that cannot start any token".
func TestParseExplainsTabs(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, yaml string
		line       string
	}{
		{"first key of a section", "interval: 1s\nlog:\n\tlevel: info\n", "cfg.yaml:3: "},
		{"after an indented key", "log:\n  level: info\n\tformat: json\n", "cfg.yaml:3: "},
		{"list item", "sources:\n  ports:\n  - 8080\n\t- 8443\n", "cfg.yaml:4: "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("cfg.yaml", []byte(tt.yaml))
			want := tt.line + "indented with a tab: YAML indents with spaces only, replace the tab with spaces"
			if err == nil || err.Error() != want {
				t.Errorf("Parse() = %v, want %q", err, want)
			}
		})
	}
}

// TestParseSyntaxErrorNamesTheLineOnce checks that yaml's own "line N:"
// does not follow the file's line again.
func TestParseSyntaxErrorNamesTheLineOnce(t *testing.T) {
	t.Parallel()
	_, err := Parse("cfg.yaml", []byte("interval: 1s\nlog: [\n"))
	if err == nil || !regexp.MustCompile(`^cfg\.yaml:[0-9]+: [a-z]`).MatchString(err.Error()) || strings.Contains(err.Error(), "line ") {
		t.Errorf("Parse() = %v, want \"cfg.yaml:N: what is wrong\" without a second line number", err)
	}
}

// TestParseErrorsInLineOrder checks that every problem of a file is
// reported in the order of its lines, whichever pass found it (decoding,
// validation) and however the validation iterates.
func TestParseErrorsInLineOrder(t *testing.T) {
	t.Parallel()
	yaml := strings.Join([]string{
		"policy:",               // 1
		"  targets:",            // 2
		"    app: 4",            // 3: validation
		"    cpu: 3",            // 4: validation
		"    memory: 2",         // 5: validation
		"  mix:",                // 6
		"    gpu: 1",            // 7: validation, on line 6 (the mix key)
		"interval: 1ms",         // 8: validation
		"bogus: 1",              // 9: decoding
		"agent_check:",          // 10
		"  timeout: soon",       // 11: decoding
		"log:",                  // 12
		"  format: xml",         // 13: validation
		"  level: info",         // 14
		"  level: debug",        // 15: decoding (duplicate)
		"sources:",              // 16
		"  ports: [8080, 0]",    // 17: validation
		"  count_budget: often", // 18: decoding
	}, "\n") + "\n"
	for range 20 { // map iteration must not shuffle them
		_, err := Parse("cfg.yaml", []byte(yaml))
		if err == nil {
			t.Fatal("Parse() = nil, want errors")
		}
		var lines []string
		for _, l := range strings.Split(err.Error(), "\n") {
			lines = append(lines, regexp.MustCompile(`^cfg\.yaml:([0-9]+):`).FindStringSubmatch(l)[1])
		}
		want := []string{"3", "4", "5", "6", "8", "9", "11", "13", "15", "17", "18"}
		if diff := cmp.Diff(want, lines); diff != "" {
			t.Fatalf("lines of the errors (-want +got):\n%s\n%v", diff, err)
		}
	}
}
