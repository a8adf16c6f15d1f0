package hafeedbin

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestModuleDirIsTheRepository(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, err := ModuleDir(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The test runs in internal/hafeedbin of that module.
	want, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if dir != want {
		t.Errorf("ModuleDir() = %q, want %q", dir, want)
	}
}

func TestBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/hafeed")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), "hafeed")
	if err := Build(ctx, out); err != nil {
		t.Fatal(err)
	}
	b, err := exec.CommandContext(ctx, out, "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(b), "hafeed") {
		t.Errorf("%s --help: %v\n%s", out, err, b)
	}
}

func TestModuleDirOutsideAModule(t *testing.T) {
	// Not parallel: it changes the working directory.
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("GOWORK", "off")
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
		t.Fatal("the temporary folder has a go.mod")
	}
	_, err := ModuleDir(context.Background())
	if !errors.Is(err, ErrNoModule) {
		t.Errorf("ModuleDir() outside a module: %v, want ErrNoModule", err)
	}
}
