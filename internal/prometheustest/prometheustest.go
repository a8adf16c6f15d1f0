// Package prometheustest finds the Prometheus and promtool binaries that
// tests run: those in the folder HAFEED_PROMETHEUS names (Debian's, which
// scripts/prometheus.sh fetches; `make test` sets it).
package prometheustest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// EnvDir names the variable that holds the folder of prometheus and promtool.
const EnvDir = "HAFEED_PROMETHEUS"

// Unset says why the tests that run Prometheus did not, for a visible skip.
const Unset = "SKIPPED, NOT PASSED: " + EnvDir + " is not set, so Prometheus and promtool were not run. " +
	"`make test` fetches them (make deps-prometheus) and sets it; by hand: " +
	EnvDir + "=$(scripts/prometheus.sh bin) go test ..."

// Bins is the binaries the tests run and their version.
type Bins struct {
	Prometheus string
	Promtool   string
	Version    string // "prometheus, version 2.53.3+ds1 (branch: ...)"
}

// Find returns the binaries in the folder of HAFEED_PROMETHEUS, ok false
// when the variable is unset or empty; when it is set, both must run.
func Find() (b Bins, ok bool, err error) {
	dir := os.Getenv(EnvDir)
	if dir == "" {
		return Bins{}, false, nil
	}
	b = Bins{Prometheus: filepath.Join(dir, "prometheus"), Promtool: filepath.Join(dir, "promtool")}
	for _, bin := range []string{b.Prometheus, b.Promtool} {
		out, err := exec.Command(bin, "--version").CombinedOutput()
		if err != nil {
			return Bins{}, true, fmt.Errorf("%s is %s: running %s --version: %v: %s (run `make deps-prometheus`)", EnvDir, dir, bin, err, out)
		}
		if bin == b.Prometheus {
			b.Version, _, _ = strings.Cut(string(out), "\n")
		}
	}
	return b, true, nil
}

// TB is the part of testing.TB that Require uses.
type TB interface {
	Helper()
	Fatal(args ...any)
	Skip(args ...any)
	Logf(format string, args ...any)
}

// Require returns the binaries for a test: it fails the test when
// HAFEED_PROMETHEUS is set and they do not run, and skips it, saying so
// loudly, when the variable is unset.
func Require(t TB) Bins {
	t.Helper()
	b, ok, err := Find()
	switch {
	case err != nil:
		t.Fatal(err)
	case !ok:
		t.Skip(Unset)
	}
	t.Logf("%s", b.Version)
	return b
}
