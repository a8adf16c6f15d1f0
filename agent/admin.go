package agent

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/agent/policy"
	"github.com/hafeed/hafeed/haproxy"
)

// This file is the admin state: loaded at start, changed on the control
// socket, persisted before it is served, and pushed to every HAProxy.

func (a *Agent) loadState(path string) error {
	state, err := StateFile{Path: path}.Load()
	switch {
	case errors.Is(err, ErrCorruptState):
		// Fail safe: a host whose operator drained it must not come back
		// as ready because its state file was damaged.
		state = State{Admin: haproxy.AdminDrain, Since: time.Now()}
		a.stateErr = fmt.Sprintf("%v; serving drain until an operator decides: run `hafeed ready` or `hafeed drain` to rewrite it", err)
		a.log.Error().Str("state_file", path).Err(err).Msg("state file cannot be parsed; serving drain until `hafeed ready` or `hafeed drain` rewrites it")
	case err != nil:
		return fmt.Errorf("%w (check the permissions of %s, or set --state-file)", err, path)
	case state.Since.IsZero():
		state.Since = a.started // no state file yet: ready since this start
	}
	a.mu.Lock()
	a.state = state
	a.mu.Unlock()
	a.replies.Expect(state.Peers)
	a.replies.SetAdmin(state.Admin, state.ReadyPending)
	// A drain or maint is re-applied through the runtime API; ready is not
	// pushed at start, so an operator's runtime drain stays.
	a.desired = desiredAdmin{admin: state.Admin, gen: 1, push: state.Admin != haproxy.AdminReady}
	return nil
}

// baselineSaveAfter is how much near-empty time a baseline needs before
// it is worth keeping: the first samples include the agent's own start.
const baselineSaveAfter = 5 * time.Second

// baselineSaveEvery bounds how often a changing baseline is written to the
// state file while the host is empty.
const baselineSaveEvery = time.Minute

// persistBaseline keeps the load model's measured baseline in the state
// file when it moved by more than half a percent of the target, at most
// once a baselineSaveEvery, so that a restart does not forget it.
func (a *Agent) persistBaseline(m *policy.LoadModel, now time.Time) {
	if m == nil || m.Measured < baselineSaveAfter.Seconds() || now.Sub(a.baselineSaved) < baselineSaveEvery {
		return
	}
	// The sampling loop does not wait for an admin change: it tries again
	// at the next sample.
	select {
	case a.adminLock <- struct{}{}:
	default:
		return
	}
	defer func() { <-a.adminLock }()
	cur := a.currentState()
	if cur.Baseline != nil && math.Abs(cur.Baseline.Baseline-m.Baseline) < 0.005 {
		return
	}
	cur.Baseline = m
	if err := a.stateFile().Save(cur); err != nil {
		a.log.Warn().Err(err).Msg("recording the measured baseline")
		return
	}
	a.baselineSaved = now
	a.mu.Lock()
	a.state = cur
	a.mu.Unlock()
}

func (a *Agent) persistAnnounced() {
	a.adminLock <- struct{}{}
	defer func() { <-a.adminLock }()
	cur := a.currentState()
	if _, announcing := a.replies.Current(); announcing || !cur.ReadyPending {
		return
	}
	cur.ReadyPending, cur.Peers = false, nil
	if err := a.stateFile().Save(cur); err != nil {
		// Harmless: a restart would announce "ready" once more.
		a.log.Warn().Err(err).Msg("recording the end of the ready announcement")
		return
	}
	a.mu.Lock()
	a.state = cur
	a.mu.Unlock()
	a.log.Info().Msg("every polling HAProxy has heard ready; replying with the weight only")
}

// errAdminBusy means another admin change held the lock until the
// request's deadline; nothing was changed.
var errAdminBusy = errors.New("busy: another admin change is in progress until this request's deadline; nothing was changed, try again")

// SetAdmin changes the admin state, persisting it before it is served, and
// returns the status right after the change. It starts nothing once ctx
// has ended, and waits for HAProxy only until ctx's deadline.
func (a *Agent) SetAdmin(ctx context.Context, admin haproxy.Admin) (control.Status, error) {
	select {
	case a.adminLock <- struct{}{}:
	case <-ctx.Done():
		return control.Status{}, errAdminBusy
	}
	defer func() { <-a.adminLock }()
	if ctx.Err() != nil {
		return control.Status{}, errAdminBusy
	}
	a.mu.Lock()
	cur, corrupt := a.state, a.stateErr != ""
	a.mu.Unlock()
	if cur.Admin == admin && !corrupt {
		return a.Status(), nil
	}
	next := State{
		Admin:        admin,
		Since:        time.Now(),
		ReadyPending: admin == haproxy.AdminReady && (cur.Admin != haproxy.AdminReady || cur.ReadyPending),
		Baseline:     cur.Baseline,
	}
	if next.ReadyPending {
		next.Peers = a.replies.RecentPeers()
	}
	if err := a.stateFile().Save(next); err != nil {
		return control.Status{}, fmt.Errorf("persisting state, so it stays %s: %w", cur.Admin, err)
	}
	// The reply changes with the state, under a.mu: a status read at any
	// moment shows the two in agreement.
	a.mu.Lock()
	a.state, a.stateErr = next, ""
	a.desired = desiredAdmin{admin: admin, gen: a.desired.gen + 1, push: true}
	a.replies.SetAdmin(admin, next.ReadyPending)
	a.mu.Unlock()
	a.log.Info().Str("from", cur.Admin.String()).Str("to", admin.String()).Str("reason", "requested on the control socket (hafeed "+admin.String()+")").Msg("admin state changed")
	var warnings []string
	if cur.Admin == haproxy.AdminMaint && admin == haproxy.AdminDrain && len(a.endpointsNow()) == 0 {
		warnings = append(warnings, "HAProxy keeps this server in MAINT as well: the agent-check protocol cannot lift maint without also lifting drain; run `hafeed ready` to leave both")
	}
	warnings = append(warnings, a.pushAll(ctx)...)
	// Still under the lock: the status shows this change, not a later one.
	st := a.Status()
	st.Warning = strings.Join(warnings, "; ")
	return st, nil
}

// pushAll applies the admin state through every runtime endpoint at once,
// waiting at most pushTimeout and not past ctx's deadline; endpoints that
// fail, or are still busy then, keep retrying in the background.
func (a *Agent) pushAll(ctx context.Context) []string {
	endpoints := a.endpointsNow()
	if len(endpoints) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, pushTimeout)
	defer cancel()
	errs := make(chan error, len(endpoints))
	for _, e := range endpoints {
		// Each ends within pushTimeout of taking the endpoint's lock,
		// which its own Run holds at most as long.
		go func() { errs <- e.pushNow(ctx) }()
	}
	var warnings []string
	for range endpoints {
		var err error
		select {
		case err = <-errs:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("not pushed yet, retrying in the background (the agent-check reply carries it too): %v", err))
		}
		if ctx.Err() != nil {
			break
		}
	}
	return warnings
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
		if req.ShedRate > 0 && a.closerNow() == nil {
			return control.Response{Error: "shedding needs a way to close connections: configure haproxy[].runtime (shed.via: runtime) or shed.hook_url (shed.via: hook)"}
		}
		admin, _ := haproxy.ParseAdmin(req.Command)
		st, err := a.SetAdmin(ctx, admin)
		if err != nil {
			return control.Response{Error: err.Error()}
		}
		if req.ShedRate > 0 {
			job, err := a.startShed(ctx, req)
			if err != nil {
				st.Warning = strings.TrimPrefix(st.Warning+"; "+err.Error(), "; ")
			} else {
				st.Shed = &job
			}
		}
		return control.Response{OK: true, Status: &st}
	case control.CommandStopShed:
		st := a.Status()
		if j := a.stopShed(ctx, req.Job); j != nil {
			st.Shed = j
		}
		return control.Response{OK: true, Status: &st}
	default:
		return control.Response{Error: fmt.Sprintf("unknown command %q: want status, ready, drain, maint or stop-shed", req.Command)}
	}
	st := a.Status()
	return control.Response{OK: true, Status: &st}
}

// Status reports the agent's current state.
func (a *Agent) Status() control.Status {
	var endpoints []control.EndpointStatus
	for _, e := range a.endpointsNow() {
		endpoints = append(endpoints, e.snapshot())
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	line, announcing := a.replies.Current()
	st := control.Status{
		Admin:           a.state.Admin.String(),
		Since:           a.state.Since,
		Reply:           trimNewline(line),
		AnnouncingReady: announcing,
		StateError:      a.stateErr,
		Peers:           a.replies.Peers(),
		PID:             os.Getpid(),
		Version:         a.opts.Version,
		StartedAt:       a.started,
		ConfigFile:      a.opts.ConfigFile,
		AgentListen:     a.listen,
		ControlSocket:   a.cfg.ControlSocket,
		StateFile:       a.cfg.StateFile,
		HAProxy:         endpoints,
		RestartNeeded:   slices.Clone(a.restartNeeded),
	}
	if a.sample != nil {
		s := *a.sample
		st.Sample = &s
	}
	if a.shed != nil {
		j := a.shed.snapshot()
		st.Shed = &j
	}
	if a.rebal != nil {
		r := *a.rebal
		st.Rebalance = &r
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

func (a *Agent) currentState() State {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state
}

func (a *Agent) stateFile() StateFile { return StateFile{Path: a.conf().StateFile} }

// statusLine is the one-line status systemctl shows.
func (a *Agent) statusLine() string {
	line, _ := a.replies.Current()
	return fmt.Sprintf("admin %s, reply %q", a.currentState().Admin, trimNewline(line))
}

var _ control.Handler = (*Agent)(nil)
