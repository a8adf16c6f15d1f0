// Package prometheus_test checks hafeed-rules.yml: promtool's syntax check
// and the unit tests in hafeed-rules_test.yml, and that the rules read only
// metrics the agent exports.
package prometheus_test

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/hafeed/hafeed/internal/prometheustest"
)

// TestPromtool runs promtool check rules and promtool test rules, as CI
// must; without HAFEED_PROMETHEUS it is skipped, saying so.
func TestPromtool(t *testing.T) {
	t.Parallel()
	bins := prometheustest.Require(t)
	for _, args := range [][]string{
		{"check", "rules", "hafeed-rules.yml"},
		{"test", "rules", "hafeed-rules_test.yml"},
	} {
		out, err := exec.Command(bins.Promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestRulesReadExportedMetrics checks every hafeed_ metric the rules read
// against the names agent/prometheus.go declares, so that a renamed metric
// fails here and not in an operator's empty dashboard. It needs no promtool.
func TestRulesReadExportedMetrics(t *testing.T) {
	t.Parallel()
	rules, err := os.ReadFile("hafeed-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../../agent/prometheus.go")
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, m := range regexp.MustCompile(`prometheus\.NewDesc\("(hafeed_[a-z_]+)"`).FindAllStringSubmatch(string(src), -1) {
		exported[m[1]] = true
	}
	if len(exported) < 10 {
		t.Fatalf("found %d metric names in agent/prometheus.go: the pattern no longer matches its declarations", len(exported))
	}
	// A metric name outside comments, not the middle of a recorded one
	// (backend:hafeed_...:max).
	uncommented := regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(string(rules), "")
	read := regexp.MustCompile(`(?:^|[^:a-z_])(hafeed_[a-z_]+)`).FindAllStringSubmatch(uncommented, -1)
	if len(read) < 8 {
		t.Fatalf("found %d metric names in hafeed-rules.yml: the pattern no longer matches", len(read))
	}
	for _, m := range read {
		if !exported[m[1]] {
			t.Errorf("hafeed-rules.yml reads %s, which agent/prometheus.go does not export", m[1])
		}
	}
}
