package metrics

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when a test advances it.
type fakeClock struct{ t time.Time }

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// copyFixtures copies testdata/<dir> to dst, which a test may then rewrite.
func copyFixtures(t *testing.T, dir, dst string) {
	t.Helper()
	if err := os.CopyFS(dst, os.DirFS(filepath.Join("testdata", dir))); err != nil {
		t.Fatal(err)
	}
}

// writeFile writes content to path, creating its directory.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// readFixture returns the content of testdata/<name>.
func readFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// near reports whether got is within 1e-9 of want.
func near(got, want float64) bool { return got > want-1e-9 && got < want+1e-9 }
