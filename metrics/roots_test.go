package metrics

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestCountCPUs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, stat string
		want       int
	}{
		{"fixture", readFixture(t, "proc/stat"), 4},
		{"one", "cpu  1 2 3 4\ncpu0 1 2 3 4\nintr 1\n", 1},
		{"offline gap", "cpu  1\ncpu0 1\ncpu2 1\ncpu7 1\n", 3},
		{"aggregate only", "cpu  1 2 3 4\n", 0},
		{"not cpu lines", "cpufreq 1\ncpux 2\nctxt 3\n", 0},
		{"empty", "", 0},
	}
	for _, tt := range tests {
		if got := countCPUs(tt.stat); got != tt.want {
			t.Errorf("%s: countCPUs = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestCPUCount(t *testing.T) {
	t.Parallel()
	if n, err := cpuCount("testdata/proc", 0); err != nil || n != 4 {
		t.Errorf("cpuCount(fixture) = %d, %v; want 4", n, err)
	}
	if n, err := cpuCount("testdata/does-not-exist", 6); err != nil || n != 6 {
		t.Errorf("cpuCount(override 6) = %d, %v; want 6 without reading procfs", n, err)
	}
	if _, err := cpuCount(t.TempDir(), 0); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cpuCount(empty root): err = %v, want os.ErrNotExist", err)
	}
	empty := t.TempDir()
	writeFile(t, empty+"/stat", "cpu  1 2 3 4\n")
	if _, err := cpuCount(empty, 0); err == nil {
		t.Error("cpuCount(no cpuN lines) = nil error, want one")
	}
}

func TestUnifiedRoot(t *testing.T) {
	t.Parallel()
	v2, hybrid, none := t.TempDir(), t.TempDir(), t.TempDir()
	for _, p := range []string{filepath.Join(v2, "cgroup.controllers"), filepath.Join(hybrid, "unified", "cgroup.controllers")} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("cpu memory\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for root, want := range map[string]string{v2: v2, hybrid: filepath.Join(hybrid, "unified"), none: none} {
		if got := unifiedRoot(root); got != want {
			t.Errorf("unifiedRoot(%s) = %s, want %s", root, got, want)
		}
	}
}
