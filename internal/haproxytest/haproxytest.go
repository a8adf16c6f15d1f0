// Package haproxytest finds the HAProxy builds that tests run against: the
// system's haproxy on PATH, and the builds listed in HAFEED_HAPROXY_BINS
// (the newer lines scripts/haproxy-versions.sh fetches; `make test` sets it).
package haproxytest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
)

// EnvBins names the variable that lists further HAProxy binaries, separated
// like PATH.
const EnvBins = "HAFEED_HAPROXY_BINS"

// Build is one HAProxy binary and its version.
type Build struct {
	Path    string
	Version string // "3.0.11"
	Major   int
	Minor   int
}

// Name is the build's name in test names: "haproxy-3.0.11".
func (b Build) Name() string { return "haproxy-" + b.Version }

// AtLeast tells whether the build is major.minor or later.
func (b Build) AtLeast(major, minor int) bool {
	return b.Major > major || b.Major == major && b.Minor >= minor
}

var versionLine = regexp.MustCompile(`(?m)^HA-?Proxy version (\d+)\.(\d+)(\.\d+)?`)

// Probe runs `path -v` and reads the version it prints.
func Probe(path string) (Build, error) {
	out, err := exec.Command(path, "-v").CombinedOutput()
	if err != nil {
		return Build{}, fmt.Errorf("running %s -v: %v: %s", path, err, out)
	}
	return parseVersion(path, string(out))
}

func parseVersion(path, out string) (Build, error) {
	m := versionLine.FindStringSubmatch(out)
	if m == nil {
		return Build{}, fmt.Errorf("%s -v printed no version line: %q", path, out)
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	return Build{Path: path, Version: m[1] + "." + m[2] + m[3], Major: major, Minor: minor}, nil
}

// System is the haproxy on PATH.
func System() (Build, error) {
	path, err := exec.LookPath("haproxy")
	if err != nil {
		return Build{}, fmt.Errorf("haproxy is not on PATH: run `make deps` (it installs Debian's haproxy package)")
	}
	return Probe(path)
}

// Matrix is the builds HAFEED_HAPROXY_BINS lists, none when it is unset.
// Every listed binary must run.
func Matrix() ([]Build, error) {
	var builds []Build
	for _, path := range filepath.SplitList(os.Getenv(EnvBins)) {
		if path == "" {
			continue
		}
		b, err := Probe(path)
		if err != nil {
			return nil, fmt.Errorf("%s lists %s: %w (run `make deps-haproxy-matrix`)", EnvBins, path, err)
		}
		builds = append(builds, b)
	}
	return builds, nil
}

// MatrixUnset says why only the system's HAProxy runs, for a visible skip.
const MatrixUnset = EnvBins + " is not set: only the system's HAProxy was tested. " +
	"`make test` fetches 3.0 and 3.2 (make deps-haproxy-matrix) and sets it"
