package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hafeed/hafeed/internal/haproxytest"
)

// TestHAProxyConfigExample checks that the shipped haproxy.cfg.example is
// a configuration every tested HAProxy accepts.
func TestHAProxyConfigExample(t *testing.T) {
	t.Parallel()
	forEachHAProxy(t, func(t *testing.T, hb haproxytest.Build) {
		out, err := exec.Command(hb.Path, "-c", "-f", "../haproxy.cfg.example").CombinedOutput()
		if err != nil {
			t.Fatalf("%s -c -f haproxy.cfg.example: %v\n%s", hb.Path, err, out)
		}
	})
}

// TestHAProxyConfigExampleDynamic checks the commented dynamic variant of
// haproxy.cfg.example as a user would use it, on every tested HAProxy: its
// lines uncommented in place of the static backend.
func TestHAProxyConfigExampleDynamic(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../haproxy.cfg.example")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := dynamicVariant(string(b))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"server-template", "resolvers"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("the dynamic variant has no %s", want)
		}
	}
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	forEachHAProxy(t, func(t *testing.T, hb haproxytest.Build) {
		out, err := exec.Command(hb.Path, "-c", "-f", path).CombinedOutput()
		if err != nil {
			t.Fatalf("%s -c of the dynamic variant: %v\n%s\n%s", hb.Name(), err, out, cfg)
		}
	})
}

// dynamicVariant is the example with the static "backend ws" section
// replaced by the lines between "# BEGIN dynamic variant" and "# END
// dynamic variant", uncommented.
func dynamicVariant(example string) (string, error) {
	before, rest, ok := strings.Cut(example, "\nbackend ws\n")
	if !ok {
		return "", errors.New("no \"backend ws\" section")
	}
	_, block, ok := strings.Cut(rest, "# BEGIN dynamic variant\n")
	if !ok {
		return "", errors.New("no \"# BEGIN dynamic variant\" line")
	}
	block, _, ok = strings.Cut(block, "# END dynamic variant\n")
	if !ok {
		return "", errors.New("no \"# END dynamic variant\" line")
	}
	var out strings.Builder
	out.WriteString(before + "\n")
	for _, line := range strings.Split(block, "\n") {
		out.WriteString(strings.TrimPrefix(line, "#") + "\n")
	}
	return out.String(), nil
}

// TestPast64kConfig checks the configuration docs/OPERATIONS.md gives in
// "Past 64k sockets per host" on every tested HAProxy.
func TestPast64kConfig(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../docs/OPERATIONS.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "<!-- past-64k haproxy.cfg")
	if !ok {
		t.Fatal(`docs/OPERATIONS.md has no "<!-- past-64k haproxy.cfg" block`)
	}
	_, rest, _ = strings.Cut(rest, "```haproxy\n")
	cfg, _, ok := strings.Cut(rest, "```")
	if !ok || !strings.Contains(cfg, "source 10.0.0.3") || !strings.Contains(cfg, ":8081") {
		t.Fatalf("the past-64k block is not the two-layout backend:\n%s", cfg)
	}
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	forEachHAProxy(t, func(t *testing.T, hb haproxytest.Build) {
		out, err := exec.Command(hb.Path, "-c", "-f", path).CombinedOutput()
		if err != nil {
			t.Fatalf("%s -c of the past-64k configuration: %v\n%s\n%s", hb.Name(), err, out, cfg)
		}
		t.Logf("%s: %s", hb.Name(), bytes.TrimSpace(out))
	})
}
