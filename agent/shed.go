package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/hafeed/hafeed/agent/config"
	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/agent/policy"
	"github.com/hafeed/hafeed/haproxy"
	"github.com/hafeed/hafeed/metrics"
	"github.com/hafeed/hafeed/shed"
)

// This file is hafeed's shedding: the two ways to close connections (the
// runtime API's "shutdown session" and the application's shed hook), the
// drain's shedding job, and the rebalancer that sheds a host's excess.

// closer closes up to n of this host's connections so that their clients
// reconnect elsewhere, and says how many it closed.
type closer interface {
	close(ctx context.Context, n int, reason string) (int, error)
	// via names the way, as shed.via does: runtime or hook.
	via() string
}

// hookCloser asks the application to close sockets: a POST of
// {"count": N, "reason": "..."} answered with {"closed": K} (package shed).
type hookCloser struct {
	url    string
	client *http.Client
}

func (h hookCloser) close(ctx context.Context, n int, reason string) (int, error) {
	body, _ := json.Marshal(shed.ShedRequest{Count: n, Reason: reason})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("shed hook %s: %w", h.url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64*1024))
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("shed hook %s: %s: %s", h.url, resp.Status, bytes.TrimSpace(data))
	}
	var out shed.ShedResponse
	if err := json.Unmarshal(data, &out); err != nil {
		return 0, fmt.Errorf("shed hook %s: malformed reply %q: %v", h.url, data, err)
	}
	return out.Closed, nil
}

func (h hookCloser) via() string { return "hook" }

// stop drops the hook client's idle connections once the closer is replaced.
func (h hookCloser) stop() { h.client.CloseIdleConnections() }

// shedJob closes connections at a bounded rate until few enough remain.
type shedJob struct {
	rate     float64
	min      int
	deadline time.Time
	reason   string
	// cancel, closed by stop, asks run to end; done is closed once it has.
	cancel   chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	mu     sync.Mutex
	status control.ShedStatus
}

func newShedJob(rate float64, min int, reason string) *shedJob {
	return &shedJob{rate: rate, min: min, reason: reason, cancel: make(chan struct{}), done: make(chan struct{})}
}

// stop asks the job to end; it waits until it has or ctx ends.
func (j *shedJob) stop(ctx context.Context) {
	j.stopOnce.Do(func() { close(j.cancel) })
	select {
	case <-j.done:
	case <-ctx.Done():
	}
}

func (j *shedJob) snapshot() control.ShedStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.status
}

func (j *shedJob) update(f func(*control.ShedStatus)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	f(&j.status)
}

// shedTick is the shortest pause between two closes: faster rates close
// a few connections per tick.
const shedTick = 50 * time.Millisecond

// run closes connections at j.rate, spread evenly with ±50% jitter so
// that clients do not reconnect in a herd, until remaining() is at most
// j.min, the deadline passes, keep() turns false or ctx ends.
//
// current is the closer in effect at each close, so that a reload that
// changes shed.* or haproxy[] takes effect in a running job too.
func (j *shedJob) run(ctx context.Context, current func() closer, remaining func() int, keep func() bool, log zerolog.Logger) {
	defer close(j.done)
	defer j.update(func(s *control.ShedStatus) { s.Active = false })
	period := max(time.Duration(float64(time.Second)/j.rate), shedTick)
	var owed float64
	last := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			j.update(func(s *control.ShedStatus) { s.Ended = "stopped" })
			return
		case <-j.cancel:
			j.update(func(s *control.ShedStatus) { s.Ended = "stopped on request (hafeed drain --wait interrupted)" })
			return
		case <-timer.C:
		}
		now := time.Now()
		left := remaining()
		switch {
		case left <= j.min:
			j.update(func(s *control.ShedStatus) { s.Ended = fmt.Sprintf("done: %d connections left", left) })
			return
		case !j.deadline.IsZero() && now.After(j.deadline):
			j.update(func(s *control.ShedStatus) { s.Ended = fmt.Sprintf("timed out with %d connections left", left) })
			return
		case !keep():
			j.update(func(s *control.ShedStatus) { s.Ended = "admin state changed" })
			return
		}
		owed = min(owed+j.rate*now.Sub(last).Seconds(), j.rate+1)
		last = now
		if n := min(int(owed), left-j.min); n > 0 {
			c := current()
			if c == nil {
				j.update(func(s *control.ShedStatus) { s.Ended = "stopped: a reload left no way to close connections" })
				return
			}
			closed, err := c.close(ctx, n, j.reason)
			owed -= float64(n)
			j.update(func(s *control.ShedStatus) {
				s.Via = c.via()
				s.Closed += closed
				if err != nil {
					s.LastError = err.Error()
				}
			})
			if err != nil {
				log.Warn().Err(err).Msg("shedding connections")
			} else {
				log.Debug().Int("closed", closed).Str("reason", j.reason).Msg("shed connections")
			}
		}
		timer.Reset(time.Duration(float64(period) * (0.5 + rand.Float64())))
	}
}

// runtimeCloser closes this host's sessions through HAProxy's runtime API
// ("shutdown session"), picked at random over the endpoints. The session
// list is read at most once a second: "show sess" lists every stream of
// the HAProxy, which is large, and a shedding job closes a few at a time.
type runtimeCloser struct {
	endpoints []*endpoint

	mu     sync.Mutex
	listed time.Time
	queue  []session // this host's sessions, shuffled, not yet closed
}

// session is one of this host's streams in one HAProxy.
type session struct {
	e  *endpoint
	id string
}

// sessionsTTL is how long a "show sess" listing is used.
const sessionsTTL = time.Second

var errNoSessions = errors.New("no sessions of this server in HAProxy")

func (rc *runtimeCloser) close(ctx context.Context, n int, _ string) (int, error) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var errs []error
	if len(rc.queue) == 0 || time.Since(rc.listed) > sessionsTTL {
		rc.queue, errs = rc.list(ctx)
		rc.listed = time.Now()
	}
	if len(rc.queue) == 0 {
		if len(errs) > 0 {
			return 0, errors.Join(errs...)
		}
		return 0, errNoSessions
	}
	closed := 0
	for closed < n && len(rc.queue) > 0 {
		s := rc.queue[0]
		rc.queue = rc.queue[1:]
		if err := s.e.rt.ShutdownSession(ctx, s.id); err != nil {
			if !errors.Is(err, haproxy.ErrNoSuchSession) { // it ended by itself meanwhile
				errs = append(errs, err)
			}
			continue
		}
		closed++
	}
	return closed, errors.Join(errs...)
}

func (rc *runtimeCloser) via() string { return "runtime" }

// list reads this host's sessions from every endpoint, shuffled.
func (rc *runtimeCloser) list(ctx context.Context) ([]session, []error) {
	var all []session
	var errs []error
	for _, e := range rc.endpoints {
		targets := e.currentTargets()
		// Streamed: an HAProxy's whole stream list is large, this host's
		// share of it is what is kept.
		var mine []session
		err := e.rt.EachSession(ctx, func(s haproxy.Session) error {
			if slices.Contains(targets, target{s.Backend, s.Server}) {
				mine = append(mine, session{e, s.ID})
			}
			return nil
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		all = append(all, mine...)
	}
	rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	return all, errs
}

// connCounter counts this host's established connections for a shedding
// job, fresher than the sampler's last sample but spending at most a tenth
// of a core on it while the job runs.
func connCounter(src config.SourcesConfig, agentPort uint16) func() int {
	c := &metrics.Conns{Ports: src.Ports, ProcRoot: src.ProcRoot, Exclude: []uint16{agentPort}}
	pacer := metrics.CountPacer{Budget: 0.1}
	var last int
	return func() int {
		start := time.Now()
		if !pacer.Due(start) {
			return last
		}
		n, err := c.Count(context.Background())
		if err != nil {
			return 1 << 30 // unknown: keep going until the deadline
		}
		last = n.Established
		pacer.Counted(start, time.Since(start))
		return last
	}
}

// startShed hands a drain's shedding job to runShedJobs, replacing any
// job still running, and returns its status as it starts.
func (a *Agent) startShed(ctx context.Context, req control.Request) (control.ShedStatus, error) {
	job := newShedJob(req.ShedRate, req.Min, "drain")
	if req.Timeout > 0 {
		job.deadline = time.Now().Add(req.Timeout)
	}
	a.mu.Lock()
	a.shedSeq++
	job.status = control.ShedStatus{Job: a.shedSeq, Reason: "drain", Rate: req.ShedRate, Started: time.Now(), Deadline: job.deadline, Min: req.Min, Active: true}
	a.mu.Unlock()
	job.status.Via = a.closerVia()
	select {
	case a.shedJobs <- job:
	case <-ctx.Done():
		return control.ShedStatus{}, errors.New("the shedding job did not start before the request's deadline: the host is drained, but nothing sheds its connections; run the drain with --shed-rate again")
	}
	a.mu.Lock()
	a.shed = job
	a.mu.Unlock()
	return job.snapshot(), nil
}

// stopShed stops the drain's shedding job numbered id (0: any), leaving
// the admin state as it is, and returns its status; nil if no such job
// runs.
func (a *Agent) stopShed(ctx context.Context, id uint64) *control.ShedStatus {
	a.mu.Lock()
	job := a.shed
	a.mu.Unlock()
	if job == nil {
		return nil
	}
	st := job.snapshot()
	if id != 0 && st.Job != id {
		return nil
	}
	job.stop(ctx)
	st = job.snapshot()
	return &st
}

// runShedJobs runs one shedding job at a time; a new one replaces the old.
func (a *Agent) runShedJobs(ctx context.Context) error {
	var cancel context.CancelFunc = func() {}
	done := make(chan struct{})
	close(done)
	defer func() {
		cancel()
		<-done
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case job := <-a.shedJobs:
			cancel()
			<-done
			jobCtx, jobCancel := context.WithCancel(ctx)
			cancel = jobCancel
			done = make(chan struct{})
			go func() {
				defer close(done)
				keep := func() bool { return a.currentState().Admin == haproxy.AdminDrain }
				current := func() closer {
					c := a.closerNow()
					if c == nil {
						return nil
					}
					return countingCloser{closer: c, count: func(n int) { a.countShed(job.reason, n) }}
				}
				count := connCounter(a.conf().Sources, a.agentPort)
				a.log.Info().Float64("rate", job.rate).Int("min", job.min).Time("deadline", job.deadline).Str("reason", job.reason).Msg("shedding connections to empty this host")
				job.run(jobCtx, current, count, keep, a.log.With().Str("component", "shed").Logger())
				a.log.Info().Int("closed", job.snapshot().Closed).Str("ended", job.snapshot().Ended).Msg("shedding job ended")
			}()
		}
	}
}

// rebalance sheds this host's excess over its fair share, once a second
// while rebalance.enabled (a reload may turn it on or off),
// from the backend view of the runtime endpoints (or, without any, from
// the local utilisation).
func (a *Agent) rebalance(ctx context.Context) error {
	log := a.log.With().Str("component", "rebalance").Logger()
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	var st policy.RebalanceState
	last := time.Now()
	total := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		now := time.Now()
		dt := now.Sub(last)
		last = now
		rb := a.conf().Rebalance
		if !rb.Enabled {
			// A reload turned it off: status shows no step of a rebalancer
			// that does not run.
			st = policy.RebalanceState{}
			a.mu.Lock()
			a.rebal = nil
			a.mu.Unlock()
			continue
		}
		status := control.RebalanceStatus{At: now, Shed: total}
		if a.currentState().Admin != haproxy.AdminReady {
			st = policy.RebalanceState{}
			status.Reason = "not ready: the drain moves connections instead"
			a.setRebalance(status)
			continue
		}
		var d policy.RebalanceDecision
		if len(a.endpointsNow()) > 0 {
			servers, self, err := a.backendView(ctx)
			if err != nil {
				status.Error = err.Error()
				a.setRebalance(status)
				continue
			}
			st, d = rb.Step(st, servers, self, a.rebalanceHold(now), now, dt)
		} else {
			a.mu.Lock()
			s := a.sample
			a.mu.Unlock()
			if s == nil {
				continue
			}
			st, d = rb.StepLocal(st, s.Connections, s.Utilisation, now, dt)
		}
		status.Fair, status.Excess, status.Reason = d.Fair, d.Excess, d.Reason
		if c := a.closerNow(); d.Shed > 0 && c != nil {
			closed, err := c.close(ctx, d.Shed, shed.ReasonRebalance)
			total += closed
			a.countShed("rebalance", closed)
			status.Shed = total
			ev := log.Info()
			if err != nil {
				status.Error = err.Error()
				ev = log.Warn().Err(err)
			}
			ev.Int("closed", closed).Float64("fair", d.Fair).Float64("excess", d.Excess).Str("reason", d.Reason).Msg("rebalance shed connections")
		}
		a.setRebalance(status)
	}
}

// rebalanceHold says why this host must not shed now, "" if it may: it
// entered service (hafeed ready) less than the policy's settle time ago,
// and the connections it is receiving are not an excess to move on.
func (a *Agent) rebalanceHold(now time.Time) string {
	settle := a.conf().Policy.SettleTime()
	if st := a.currentState(); st.Since.After(a.started) && now.Sub(st.Since) < settle {
		return fmt.Sprintf("in service for %v: holding while the weights settle (%v)", now.Sub(st.Since).Round(time.Second), settle)
	}
	return ""
}

// backendWeight is the mean weight of this host's backend's other servers
// in rotation, from the runtime endpoints; 0 when none shows it.
func (a *Agent) backendWeight(ctx context.Context) float64 {
	if len(a.endpointsNow()) == 0 {
		return 0
	}
	ctx, cancel := context.WithTimeout(ctx, backendWeightTimeout)
	defer cancel()
	servers, self, err := a.backendView(ctx)
	if err != nil {
		a.log.Debug().Err(err).Msg("no backend view for the starting weight")
		return 0
	}
	var sum float64
	n := 0
	for _, s := range servers {
		if s.Name != self && s.Weight > 0 {
			sum += float64(s.Weight)
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// backendWeightTimeout bounds the backend view the sampling loop asks for
// while a host has no estimate of its own, so a slow endpoint does not
// stall sampling.
const backendWeightTimeout = 500 * time.Millisecond

func (a *Agent) setRebalance(s control.RebalanceStatus) {
	a.mu.Lock()
	a.rebal = &s
	a.mu.Unlock()
}

// backendView sums every endpoint's view of this host's first backend.
func (a *Agent) backendView(ctx context.Context) ([]policy.ServerLoad, string, error) {
	ctx, cancel := context.WithTimeout(ctx, pushTimeout)
	defer cancel()
	var self target
	byName := map[string]*policy.ServerLoad{}
	var order []string
	for _, e := range a.endpointsNow() {
		targets := e.currentTargets()
		if len(targets) == 0 {
			continue
		}
		if self.Backend == "" {
			self = targets[0]
		}
		load, err := e.backendLoad(ctx)
		if err != nil {
			return nil, "", err
		}
		for t, l := range load {
			if t.Backend != self.Backend {
				continue
			}
			sl := byName[l.Name]
			if sl == nil {
				sl = &policy.ServerLoad{Name: l.Name, Weight: l.Weight}
				byName[l.Name] = sl
				order = append(order, l.Name)
			}
			sl.Conns += l.Conns
			sl.Weight = min(sl.Weight, l.Weight)
		}
	}
	if self.Backend == "" {
		return nil, "", errNoTargets
	}
	out := make([]policy.ServerLoad, 0, len(order))
	for _, n := range order {
		out = append(out, *byName[n])
	}
	return out, self.Server, nil
}

// countingCloser adds what a closer closed to the agent's totals.
type countingCloser struct {
	closer
	count func(int)
}

func (c countingCloser) close(ctx context.Context, n int, reason string) (int, error) {
	closed, err := c.closer.close(ctx, n, reason)
	c.count(closed)
	return closed, err
}

// closerVia names the way to shed in effect, "" if there is none.
func (a *Agent) closerVia() string {
	if c := a.closerNow(); c != nil {
		return c.via()
	}
	return ""
}

// countShed adds closed connections to the shed totals.
func (a *Agent) countShed(reason string, n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.shedCount == nil {
		a.shedCount = map[string]uint64{}
	}
	a.shedCount[reason] += uint64(n)
}

func (a *Agent) shedTotals() map[string]uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]uint64{"drain": 0, "rebalance": 0}
	for k, v := range a.shedCount {
		out[k] = v
	}
	return out
}
