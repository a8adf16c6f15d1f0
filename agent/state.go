package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/hafeed/hafeed/agent/policy"
	"github.com/hafeed/hafeed/haproxy"
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

// StateFile persists State atomically: a reader sees the old file or the
// new one, never half of one, even across a crash.
type StateFile struct {
	Path string
}

// Load reads the state. A missing file is the ready state; one that cannot
// be parsed returns an error wrapping ErrCorruptState.
func (f StateFile) Load() (State, error) {
	data, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return State{Admin: haproxy.AdminReady}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("reading state file %s: %w", f.Path, err)
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

// Save writes the state to a temporary file, syncs it, renames it over the
// old one and syncs the directory.
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
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing state file: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o640); err != nil {
		return fmt.Errorf("writing state file: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.Path); err != nil {
		return fmt.Errorf("replacing state file: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing state directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing state directory: %w", err)
	}
	return nil
}
