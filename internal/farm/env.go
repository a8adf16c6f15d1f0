package farm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

	"github.com/hafeed/hafeed/internal/hafeedbin"
	"github.com/hafeed/hafeed/internal/supervise"
)

// ErrNoHAProxy says how to install HAProxy when it is not on PATH.
var ErrNoHAProxy = errors.New("haproxy not found: install it with `sudo apt-get install haproxy`")

// CheckHAProxy fails with ErrNoHAProxy when HAProxy is not on PATH.
func CheckHAProxy() error {
	if _, err := exec.LookPath("haproxy"); err != nil {
		return ErrNoHAProxy
	}
	return nil
}

// Env is what every farm of a program shares: the hafeed binary, the
// supervisor of every process, the load, and a temporary folder for both
// and the processes' logs.
type Env struct {
	// Dir is the temporary folder; the caller removes it (RemoveAll)
	// after StopAll, or keeps it for the logs.
	Dir string
	// Load is the load with the measured HashNanos.
	Load Load
	// Progress receives the farms' progress lines; writes are serialised.
	Progress io.Writer

	self      string // the calling program, for the child roles
	hafeedBin string
	sup       *supervise.Supervisor
	logRoot   string
}

// Prepare checks that HAProxy is installed, builds hafeed into a new
// temporary folder and measures the cost of a hash with self, the calling
// program, which must call RunRole first in its main. When Prepare fails
// after making the folder, it returns the Env so that the caller can show
// or remove Dir.
func Prepare(ctx context.Context, self string, load Load, progress io.Writer) (*Env, error) {
	if err := CheckHAProxy(); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "hafeed-farm-")
	if err != nil {
		return nil, err
	}
	logRoot := filepath.Join(tmp, "logs")
	e := &Env{Dir: tmp, Load: load, Progress: &lockedWriter{w: progress}, self: self, sup: supervise.New(logRoot), logRoot: logRoot}
	if err := os.MkdirAll(logRoot, 0o755); err != nil {
		return e, err
	}
	fmt.Fprintf(progress, "building hafeed into %s (go build ./cmd/hafeed)\n", tmp)
	e.hafeedBin = filepath.Join(tmp, "hafeed")
	if err := hafeedbin.Build(ctx, e.hafeedBin); err != nil {
		return e, err
	}
	if e.Load.HashNanos, err = calibrate(ctx, self, load.PayloadSize); err != nil {
		return e, err
	}
	return e, nil
}

// LogDir is where the processes' logs are.
func (e *Env) LogDir() string { return e.logRoot }

// StopAll stops every process the farms started.
func (e *Env) StopAll() error { return e.sup.StopAll() }

// Running is the number of processes started and not stopped.
func (e *Env) Running() int { return e.sup.Running() }

// lockedWriter serialises writes from the run loop and event goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
