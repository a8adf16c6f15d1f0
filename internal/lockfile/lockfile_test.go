package lockfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAcquireExcludesASecondHolder(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "x.lock")
	first, err := Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	if second, err := Acquire(path); !errors.Is(err, ErrLocked) {
		if second != nil {
			second.Close()
		}
		t.Errorf("Acquire while held = %v, want ErrLocked", err)
	}
	first.Close()
	again, err := Acquire(path)
	if err != nil {
		t.Fatalf("Acquire after the holder closed = %v", err)
	}
	again.Close()
}

// TestAcquireRefusesSymlink checks that a symbolic link planted where the
// lock file goes is refused, not followed: root would otherwise create
// (and lock) a file of the link owner's choosing (issue 17, item 13).
func TestAcquireRefusesSymlink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	victim := filepath.Join(dir, "chosen-by-someone-else")
	path := filepath.Join(dir, "x.lock")
	if err := os.Symlink(victim, path); err != nil {
		t.Fatal(err)
	}
	f, err := Acquire(path)
	if err == nil {
		f.Close()
		t.Fatal("Acquire through a symbolic link = nil, want an error")
	}
	if !strings.Contains(err.Error(), "symbolic link") || !strings.Contains(err.Error(), path) {
		t.Errorf("Acquire through a symbolic link = %q, want it to name %s as a symbolic link", err, path)
	}
	if _, err := os.Lstat(victim); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the link's target was created (%v)", err)
	}
}
