package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hafeed/hafeed/agent/policy"
	"github.com/hafeed/hafeed/haproxy"
	"github.com/hafeed/hafeed/internal/lockfile"
)

// State is the admin state hafeed keeps across restarts.
type State struct {
	Admin haproxy.Admin
	Since time.Time
	// Reason is the operator's note on a drain or maint (--reason), "" if
	// none was given.
	Reason string
	// ReadyPending is true from leaving drain or maint until every HAProxy
	// polling the agent got the "ready" word, so a restart in between
	// finishes the announcement instead of leaving HAProxy drained.
	ReadyPending bool
	// Peers are the HAProxy addresses that polled when the announcement
	// began; after a restart they must hear "ready" before it ends.
	Peers []netip.Addr
	// Baseline is the load model's measured baseline, kept so that a
	// restart on a busy host does not have to assume it again.
	Baseline *policy.LoadModel
}

type stateJSON struct {
	Version      int           `json:"version"`
	Admin        string        `json:"admin"`
	Since        time.Time     `json:"since"`
	Reason       string        `json:"reason,omitempty"`
	ReadyPending bool          `json:"ready_pending,omitempty"`
	Peers        []netip.Addr  `json:"peers,omitempty"`
	Baseline     *baselineJSON `json:"baseline,omitempty"`
}

// baselineJSON is policy.LoadModel as the state file keeps it.
type baselineJSON struct {
	Baseline float64 `json:"baseline"`
	Measured float64 `json:"measured_s"`
}

// ErrCorruptState marks a state file that exists but cannot be used.
var ErrCorruptState = errors.New("state file is corrupt")

// ErrNotDurable marks a save that replaced the state file, so that the
// agent and a restart read the new state, but could not sync its
// directory: a power loss may still bring back the old one.
var ErrNotDurable = errors.New("the state file was replaced, but syncing its directory failed")

// StateFile persists State atomically: a reader sees the old file or the
// new one, never half of one, even across a crash.
type StateFile struct {
	Path string
	// hooks, in tests, act between the steps of a load or a save as
	// another process or a failing disk would; nil otherwise.
	hooks *fileHooks
}

// fileHooks are the points in Load and Save where a test may act.
type fileHooks struct {
	// reading runs as Load starts, and may hang as a dead mount does.
	reading func()
	// written runs once the temporary file at tmp is written and synced.
	written func(tmp string)
	// syncDir, when set, syncs the directory after the rename in place of
	// fsync, and may fail as a disk does.
	syncDir func(dir *os.File) error
}

// maxStateBytes bounds the state file: the agent writes a few hundred
// bytes, and anything much larger is not its file.
const maxStateBytes = 1 << 20

// errStateNotRegular marks something other than a regular file at the
// state file's path.
var errStateNotRegular = errors.New("not a regular file")

// Load reads the state. A missing file is the ready state; one that cannot
// be parsed, or larger than maxStateBytes, returns an error wrapping
// ErrCorruptState. Anything but a regular file (a FIFO, a device, a
// directory) is refused without reading it: it could block forever.
func (f StateFile) Load() (State, error) {
	data, err := f.read()
	if errors.Is(err, os.ErrNotExist) {
		return State{Admin: haproxy.AdminReady}, nil
	}
	if err != nil {
		return State{}, err
	}
	var sj stateJSON
	if err := json.Unmarshal(data, &sj); err != nil {
		return State{}, fmt.Errorf("%w: %s: %v", ErrCorruptState, f.Path, err)
	}
	admin, err := haproxy.ParseAdmin(sj.Admin)
	if err != nil {
		return State{}, fmt.Errorf("%w: %s: %v", ErrCorruptState, f.Path, err)
	}
	st := State{Admin: admin, Since: sj.Since, Reason: sj.Reason, ReadyPending: sj.ReadyPending, Peers: sj.Peers}
	// A baseline that is not a measurement is measured again rather than
	// trusted.
	if b := sj.Baseline; b != nil && b.Measured > 0 && b.Baseline >= 0 && b.Baseline <= 1 {
		st.Baseline = &policy.LoadModel{Baseline: b.Baseline, Measured: b.Measured}
	}
	return st, nil
}

// read reads the whole file, refusing anything but a regular file of at
// most maxStateBytes.
func (f StateFile) read() ([]byte, error) {
	if f.hooks != nil && f.hooks.reading != nil {
		f.hooks.reading()
	}
	// O_NONBLOCK: opening a FIFO with no writer waits for one otherwise.
	file, err := os.OpenFile(f.Path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("reading state file %s: %w", f.Path, err)
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading state file %s: %w", f.Path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("state file %s is %w (%v): remove it, or point state_file (--state-file) at a regular file", f.Path, errStateNotRegular, fi.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(file, maxStateBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading state file %s: %w", f.Path, err)
	}
	if len(data) > maxStateBytes {
		return nil, fmt.Errorf("%w: %s: larger than %d bytes", ErrCorruptState, f.Path, maxStateBytes)
	}
	return data, nil
}

// Lock takes the lock that keeps a second agent off this state file: an
// flock on the file's path plus ".lock", held until the returned file is
// closed. It wraps lockfile.ErrLocked when another process holds it.
func (f StateFile) Lock() (*os.File, error) {
	return lockfile.Acquire(f.Path + ".lock")
}

// CheckWritable makes sure that Save can replace the file: it creates the
// directory if needed, and a temporary file in it, removed again.
func (f StateFile) CheckWritable() error {
	dir := filepath.Dir(f.Path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(f.Path)+".*")
	if err != nil {
		return err
	}
	tmp.Close()
	return os.Remove(tmp.Name())
}

// Save writes the state to a temporary file, syncs it, renames it over the
// old one and syncs the directory. An error wrapping ErrNotDurable means
// the new state is in place; any other error, that the old one still is (a
// rename that reports failure is taken as not done, as on a local file
// system).
func (f StateFile) Save(s State) error {
	sj := stateJSON{Version: 1, Admin: s.Admin.String(), Since: s.Since.UTC(), Reason: s.Reason, ReadyPending: s.ReadyPending, Peers: s.Peers}
	if b := s.Baseline; b != nil {
		sj.Baseline = &baselineJSON{Baseline: b.Baseline, Measured: b.Measured}
	}
	data, err := json.MarshalIndent(sj, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	dir := filepath.Dir(f.Path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(f.Path)+".*")
	if err != nil {
		return fmt.Errorf("writing state file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing state file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("syncing state file: %w", err)
	}
	if f.hooks != nil && f.hooks.written != nil {
		f.hooks.written(tmp.Name())
	}
	// On the open file, not by name: the name may no longer be this file.
	if err := tmp.Chmod(0o640); err != nil {
		tmp.Close()
		return fmt.Errorf("writing state file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing state file: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.Path); err != nil {
		return fmt.Errorf("replacing state file: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotDurable, err)
	}
	defer d.Close()
	sync := (*os.File).Sync
	if f.hooks != nil && f.hooks.syncDir != nil {
		sync = f.hooks.syncDir
	}
	if err := sync(d); err != nil {
		return fmt.Errorf("%w: %w", ErrNotDurable, err)
	}
	return nil
}
