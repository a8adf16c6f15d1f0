package prometheustest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFind(t *testing.T) {
	fake := func(t *testing.T, names ...string) string {
		dir := t.TempDir()
		for _, name := range names {
			script := "#!/bin/sh\necho '" + name + ", version 2.53.3+ds1 (branch: debian/sid)'\necho '  go version: go1.24.4'\n"
			if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}

	t.Setenv(EnvDir, "")
	if _, ok, err := Find(); ok || err != nil {
		t.Errorf("with %s empty: ok %v, err %v; want not found and no error", EnvDir, ok, err)
	}

	dir := fake(t, "prometheus", "promtool")
	t.Setenv(EnvDir, dir)
	b, ok, err := Find()
	if !ok || err != nil || b.Promtool != filepath.Join(dir, "promtool") || b.Version != "prometheus, version 2.53.3+ds1 (branch: debian/sid)" {
		t.Errorf("with both binaries: %+v, ok %v, err %v", b, ok, err)
	}

	t.Setenv(EnvDir, fake(t, "prometheus"))
	if _, ok, err := Find(); !ok || err == nil || !strings.Contains(err.Error(), "make deps-prometheus") {
		t.Errorf("without promtool: ok %v, err %v; want an error saying what to run", ok, err)
	}
}
