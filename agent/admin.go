package agent

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hafeed/hafeed/agent/config"
	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/agent/runtime"
	"github.com/hafeed/hafeed/haproxy"
)

// This file is the admin state: loaded at start, changed on the control
// socket, persisted before it is served, and pushed to every HAProxy.

// adminState is the admin state and what the runtime endpoints should hold.
type adminState struct {
	// lock serialises changes, so that the order on disk is the order
	// HAProxy sees; a channel, so that a request gives up waiting at its
	// deadline. It is held across the state file's write and the pushes.
	lock chan struct{}

	mu sync.Mutex // guards the fields below; never held across I/O
	// state is what the state file holds; stateErr says why it could not
	// be read, "" when it could.
	state    State
	stateErr string
	desired  runtime.Desired
	// enteredAt is when a `hafeed ready` this agent applied put the host
	// in service, on the monotonic clock; zero otherwise. state.Since
	// cannot tell: read back from the file it is a wall-clock time only.
	enteredAt time.Time
}

func newAdminState() *adminState { return &adminState{lock: make(chan struct{}, 1)} }

// acquire takes the lock, giving up when ctx ends first.
func (s *adminState) acquire(ctx context.Context) bool {
	select {
	case s.lock <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *adminState) release() { <-s.lock }

func (s *adminState) current() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

func (s *adminState) wanted() runtime.Desired {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.desired
}

// update replaces the state kept in memory, once it is on disk. The caller
// holds the lock.
func (s *adminState) update(state State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state = state
}

// loadState reads the state file into the admin state. It gives up when
// ctx ends, so that a stop during start-up is not held up by a read that
// hangs (a dead NFS mount); the read itself is left to end with the
// process.
func (a *Agent) loadState(ctx context.Context, path string) error {
	type loaded struct {
		state State
		err   error
	}
	done := make(chan loaded, 1)
	go func() {
		state, err := a.stateFileAt(path).Load()
		done <- loaded{state, err}
	}()
	var l loaded
	select {
	case l = <-done:
	case <-ctx.Done():
		return fmt.Errorf("stopped during start-up while reading state file %s, which had not answered (a hung mount?)", path)
	}
	state, err := l.state, l.err
	var stateErr string
	switch {
	case errors.Is(err, ErrCorruptState):
		// Fail safe: a host whose operator drained it must not come back
		// as ready because its state file was damaged.
		state = State{Admin: haproxy.AdminDrain, Since: time.Now()}
		stateErr = fmt.Sprintf("%v; serving drain until an operator decides: run `hafeed ready` or `hafeed drain` to rewrite it", err)
		a.log.Error().Str("state_file", path).Err(err).Msg("state file cannot be parsed; serving drain until `hafeed ready` or `hafeed drain` rewrites it")
	case errors.Is(err, errStateNotRegular):
		return err
	case err != nil:
		return fmt.Errorf("%w (check the permissions of %s, or set --state-file)", err, path)
	case state.Since.IsZero():
		state.Since = a.started // no state file yet: ready since this start
	}
	a.admin.mu.Lock()
	a.admin.state, a.admin.stateErr = state, stateErr
	// A drain or maint is re-applied through the runtime API; ready is not
	// pushed at start, so an operator's runtime drain stays.
	a.admin.desired = runtime.Desired{Admin: state.Admin, Gen: 1, Push: state.Admin != haproxy.AdminReady}
	a.admin.mu.Unlock()
	a.replies.Expect(state.Peers)
	a.replies.SetAdmin(state.Admin, state.ReadyPending)
	return nil
}

// baselineSaveAfter is how much near-empty time a baseline needs before
// it is worth keeping: the first samples include the agent's own start.
const baselineSaveAfter = 5 * time.Second

// baselineSaveEvery bounds how often a changing baseline is written to the
// state file while the host is empty.
const baselineSaveEvery = time.Minute

// persistTimeout bounds how long the persister waits for an admin change
// to finish before it tries again at the next wake.
const persistTimeout = 5 * time.Second

// persist writes to the state file what the sampling loop learns (the end
// of a ready announcement, the measured baseline), each time the loop
// wakes it, so that the loop never waits for the admin lock or the disk.
func (a *Agent) persist(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.persistWake:
		}
		lockCtx, cancel := context.WithTimeout(ctx, persistTimeout)
		if a.admin.acquire(lockCtx) {
			a.persistAnnounced()
			a.persistBaseline(time.Now())
			a.admin.release()
		}
		cancel()
	}
}

// persistBaseline keeps the load model's measured baseline in the state
// file when it moved by more than half a percent of the target, at most
// once a baselineSaveEvery, so that a restart does not forget it. The
// caller holds the admin lock.
func (a *Agent) persistBaseline(now time.Time) {
	m := a.baseline.Load()
	if m == nil || m.Measured < baselineSaveAfter.Seconds() || now.Sub(a.baselineSaved) < baselineSaveEvery {
		return
	}
	cur := a.admin.current()
	if cur.Baseline != nil && math.Abs(cur.Baseline.Baseline-m.Baseline) < 0.005 {
		return
	}
	cur.Baseline = m
	if err := a.stateFile().Save(cur); err != nil {
		a.log.Warn().Err(err).Msg("recording the measured baseline")
		// Not synced but in place: memory follows the file.
		if !errors.Is(err, ErrNotDurable) {
			return
		}
	}
	a.baselineSaved = now
	a.admin.update(cur)
}

// persistAnnounced records that every HAProxy heard "ready". The caller
// holds the admin lock.
func (a *Agent) persistAnnounced() {
	cur := a.admin.current()
	if _, announcing := a.replies.Current(); announcing || !cur.ReadyPending {
		return
	}
	cur.ReadyPending, cur.Peers = false, nil
	if err := a.stateFile().Save(cur); err != nil {
		// Harmless: a restart would announce "ready" once more.
		a.log.Warn().Err(err).Msg("recording the end of the ready announcement")
		// Not synced but in place: memory follows the file.
		if !errors.Is(err, ErrNotDurable) {
			return
		}
	}
	a.admin.update(cur)
	a.log.Info().Msg("every polling HAProxy has heard ready; replying with the weight only")
}

// errAdminBusy means another admin change held the lock until the
// request's deadline; nothing was changed.
var errAdminBusy = errors.New("busy: another admin change is in progress until this request's deadline; nothing was changed, try again")

// SetAdmin changes the admin state, persisting it before it is served, and
// returns the status right after the change. reason is the operator's note
// on a drain or maint: kept until the state changes, replaced by a new one
// for the same state. It starts nothing once ctx has ended, and waits for
// HAProxy only until ctx's deadline.
func (a *Agent) SetAdmin(ctx context.Context, admin haproxy.Admin, reason string) (control.Status, error) {
	if !a.admin.acquire(ctx) {
		return control.Status{}, errAdminBusy
	}
	defer a.admin.release()
	if ctx.Err() != nil {
		return control.Status{}, errAdminBusy
	}
	a.admin.mu.Lock()
	cur, corrupt := a.admin.state, a.admin.stateErr != ""
	a.admin.mu.Unlock()
	if cur.Admin == admin && !corrupt {
		if reason == "" || reason == cur.Reason {
			return a.Status(), nil
		}
		return a.setAdminReason(cur, reason)
	}
	next := State{
		Admin:        admin,
		Since:        time.Now(),
		Reason:       reason,
		ReadyPending: admin == haproxy.AdminReady && (cur.Admin != haproxy.AdminReady || cur.ReadyPending),
		Baseline:     cur.Baseline,
	}
	if next.ReadyPending {
		next.Peers = a.replies.RecentPeers()
	}
	var warnings []string
	if err := a.stateFile().Save(next); errors.Is(err, ErrNotDurable) {
		// The new file is in place and a restart reads it, so the agent
		// serves it too, as asked, and says what is at risk. Putting the
		// old file back would be another write that can fail the same way.
		warnings = append(warnings, fmt.Sprintf("%v (a power loss may bring back %s; check the disk, then run `hafeed %s` again)", err, cur.Admin, admin))
		a.log.Warn().Err(err).Str("state_file", a.conf().StateFile).Msg("admin state saved but not synced to disk")
	} else if err != nil {
		return control.Status{}, fmt.Errorf("persisting state, so it stays %s: %w", cur.Admin, err)
	}
	// The reply changes with the state, under admin.mu: a status read at
	// any moment shows the two in agreement.
	a.admin.mu.Lock()
	a.admin.state, a.admin.stateErr = next, ""
	a.admin.enteredAt = time.Time{}
	if admin == haproxy.AdminReady {
		a.admin.enteredAt = next.Since
	}
	a.admin.desired = runtime.Desired{Admin: admin, Gen: a.admin.desired.Gen + 1, Push: true}
	a.replies.SetAdmin(admin, next.ReadyPending)
	a.admin.mu.Unlock()
	a.log.Info().Str("from", cur.Admin.String()).Str("to", admin.String()).Str("reason", requestedReason(admin, reason)).Msg("admin state changed")
	set := a.rt.set()
	if cur.Admin == haproxy.AdminMaint && admin == haproxy.AdminDrain && (set == nil || len(set.Endpoints()) == 0) {
		warnings = append(warnings, "HAProxy keeps this server in MAINT as well: the agent-check protocol cannot lift maint without also lifting drain; run `hafeed ready` to leave both")
	}
	if set != nil {
		warnings = append(warnings, set.PushAll(ctx)...)
	}
	// Still under the lock: the status shows this change, not a later one.
	st := a.Status()
	st.Warning = strings.Join(warnings, "; ")
	return st, nil
}

// setAdminReason replaces the operator's note on the current state, which
// stays as it is. The caller holds the admin lock.
func (a *Agent) setAdminReason(cur State, reason string) (control.Status, error) {
	next := cur
	next.Reason = reason
	if err := a.stateFile().Save(next); err != nil {
		return control.Status{}, fmt.Errorf("persisting the reason, so it stays %q: %w", cur.Reason, err)
	}
	a.admin.update(next)
	a.log.Info().Str("admin", cur.Admin.String()).Str("reason", requestedReason(cur.Admin, reason)).Msg("admin state unchanged, reason recorded")
	return a.Status(), nil
}

// requestedReason is the log's reason for a change asked for on the
// control socket, with the operator's note.
func requestedReason(admin haproxy.Admin, note string) string {
	why := "requested on the control socket (hafeed " + admin.String() + ")"
	if note != "" {
		why += ": " + note
	}
	return why
}

// Handle answers one control-socket request.
func (a *Agent) Handle(ctx context.Context, req control.Request) control.Response {
	switch req.Command {
	case control.CommandStatus:
	case control.CommandReady, control.CommandDrain, control.CommandMaint:
		if req.ShedRate != 0 && req.Command != control.CommandDrain {
			return control.Response{Error: "shed_rate goes with drain only"}
		}
		if req.ShedRate < 0 || req.Min < 0 {
			return control.Response{Error: "shed_rate and min must not be negative"}
		}
		if req.Reason != "" && req.Command == control.CommandReady {
			return control.Response{Error: "reason goes with drain and maint only"}
		}
		if err := control.CheckReason(req.Reason); err != nil {
			return control.Response{Error: err.Error()}
		}
		admin, _ := haproxy.ParseAdmin(req.Command)
		st, err := a.SetAdmin(ctx, admin, req.Reason)
		if err != nil {
			return control.Response{Error: err.Error()}
		}
		switch {
		case req.ShedRate > 0 && a.closer() == nil:
			// The drain a deploy runs before stopping the server must
			// happen wherever hafeed is installed, the packaged config
			// too: drained, HAProxy sends no new connections, and the
			// wait lasts while clients leave by themselves. Refusing it
			// would leave the host in rotation while the server stops.
			st.Warning = strings.TrimPrefix(st.Warning+"; "+noCloserWarning(a.conf()), "; ")
			a.log.Warn().Str("why", noCloserWarning(a.conf())).Msg("drain with shedding asked, but nothing can close connections: drained without shedding")
		case req.ShedRate > 0:
			job, err := a.shedder.Start(ctx, req.ShedRate, req.Min, req.Timeout)
			if err != nil {
				st.Warning = strings.TrimPrefix(st.Warning+"; "+err.Error(), "; ")
			} else {
				js := control.ShedStatusOf(job)
				st.Shed = &js
			}
		}
		return control.Response{OK: true, Status: &st}
	case control.CommandStopShed:
		st := a.Status()
		if j, ok := a.shedder.Stop(ctx, req.Job); ok {
			js := control.ShedStatusOf(j)
			st.Shed = &js
		}
		return control.Response{OK: true, Status: &st}
	case control.CommandFleet:
		f, err := a.Fleet(ctx)
		switch {
		case errors.Is(err, ErrNoRuntime):
			return control.Response{Config: true, Error: err.Error()}
		case err != nil:
			return control.Response{Error: err.Error()}
		}
		return control.Response{OK: true, Fleet: &f}
	default:
		return control.Response{Error: fmt.Sprintf("unknown command %q: want status, ready, drain, maint, stop-shed or fleet", req.Command)}
	}
	st := a.Status()
	return control.Response{OK: true, Status: &st}
}

// Status reports the agent's current state. It never waits for I/O.
func (a *Agent) Status() control.Status {
	var endpoints []control.EndpointStatus
	if set := a.rt.set(); set != nil {
		for _, e := range set.Snapshots() {
			endpoints = append(endpoints, control.EndpointStatusOf(e))
		}
	}
	cfg, restartNeeded := a.settings.get()
	st := control.Status{
		Peers:         a.replies.Peers(),
		PID:           os.Getpid(),
		Version:       a.opts.Version,
		StartedAt:     a.started,
		ConfigFile:    a.opts.ConfigFile,
		AgentListen:   a.listen,
		ControlSocket: cfg.ControlSocket,
		StateFile:     cfg.StateFile,
		HAProxy:       endpoints,
		RestartNeeded: restartNeeded,
	}
	// The state and the reply are read together, as SetAdmin changes them.
	a.admin.mu.Lock()
	line, announcing := a.replies.Current()
	st.Admin, st.Since, st.StateError = a.admin.state.Admin.String(), a.admin.state.Since, a.admin.stateErr
	st.AdminReason = a.admin.state.Reason
	a.admin.mu.Unlock()
	st.Reply, st.AnnouncingReady = trimNewline(line), announcing
	if s := a.sample.Load(); s != nil {
		c := control.SampleOf(*s)
		st.Sample = &c
	}
	if j, ok := a.shedder.Current(); ok {
		js := control.ShedStatusOf(j)
		st.Shed = &js
	}
	st.SourcePorts = a.sources.sources()
	if n := a.lines(); n > 1 {
		st.Lines = n
	}
	if r, ok := a.rebal.Status(); ok {
		rs := control.RebalanceStatusOf(r)
		st.Rebalance = &rs
	}
	if st.Peers == nil {
		st.Peers = []control.PeerStatus{}
	}
	return st
}

func trimNewline(s string) string {
	if n := len(s); n > 0 && s[n-1] == '\n' {
		return s[:n-1]
	}
	return s
}

func (a *Agent) stateFile() StateFile { return a.stateFileAt(a.conf().StateFile) }

func (a *Agent) stateFileAt(path string) StateFile { return StateFile{Path: path, hooks: a.stateHooks} }

// statusLine is the one-line status systemctl shows.
func (a *Agent) statusLine() string {
	line, _ := a.replies.Current()
	return fmt.Sprintf("admin %s, reply %q", a.admin.current().Admin, trimNewline(line))
}

var _ control.Handler = (*Agent)(nil)

// noCloserWarning is what a drain with shedding says on a host where
// nothing can close connections: applied, but nothing is closed, and what
// to configure.
func noCloserWarning(cfg config.Config) string {
	why := "nothing can close connections to move them off this host"
	if _, err := cfg.ShedWay(); err != nil {
		why = err.Error()
	}
	return "NOTHING IS BEING CLOSED: the host is drained (HAProxy sends it no new connections), but " + why +
		"; until then its connections stay until their clients leave"
}
