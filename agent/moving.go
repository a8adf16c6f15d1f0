package agent

import (
	"context"
	"time"

	"github.com/hafeed/hafeed/haproxy"
)

// RebalanceStatus is what status shows of the rebalancer.
type RebalanceStatus struct {
	At     time.Time `json:"at"`
	Fair   float64   `json:"fair"`
	Excess float64   `json:"excess"`
	Reason string    `json:"reason"`
	Shed   int       `json:"shed_total"`
	Error  string    `json:"error,omitempty"`
}

// startShed hands a drain's shedding job to runShedJobs, replacing any
// job still running.
func (a *Agent) startShed(ctx context.Context, req Request) {
	job := &shedJob{rate: req.ShedRate, min: req.Min, reason: "drain"}
	if req.Timeout > 0 {
		job.deadline = time.Now().Add(req.Timeout)
	}
	job.status = ShedStatus{Reason: "drain", Rate: req.ShedRate, Via: a.config().Shed.Via, Started: time.Now(), Deadline: job.deadline, Min: req.Min, Active: true}
	a.mu.Lock()
	a.shed = job
	a.mu.Unlock()
	select {
	case a.shedJobs <- job:
	case <-ctx.Done():
	}
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
	count := connCounter(a.config().Sources, a.agentPort)
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
				counted := countingCloser{closer: a.closer, count: func(n int) { a.countShed(job.reason, n) }}
				a.log.Info().Float64("rate", job.rate).Int("min", job.min).Time("deadline", job.deadline).Str("reason", job.reason).Msg("shedding connections to empty this host")
				job.run(jobCtx, counted, count, keep, a.log.With().Str("component", "shed").Logger())
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
	var st rebalanceState
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
		rb := a.config().Rebalance
		if !rb.Enabled {
			st = rebalanceState{}
			continue
		}
		status := RebalanceStatus{At: now, Shed: total}
		if a.currentState().Admin != haproxy.AdminReady {
			st = rebalanceState{}
			status.Reason = "not ready: the drain moves connections instead"
			a.setRebalance(status)
			continue
		}
		var d rebalanceDecision
		if len(a.endpoints) > 0 {
			servers, self, err := a.backendView(ctx)
			if err != nil {
				status.Error = err.Error()
				a.setRebalance(status)
				continue
			}
			st, d = rb.step(st, servers, self, now, dt)
		} else {
			a.mu.Lock()
			s := a.sample
			a.mu.Unlock()
			if s == nil {
				continue
			}
			st, d = rb.stepLocal(st, s.Connections, s.Utilisation, now, dt)
		}
		status.Fair, status.Excess, status.Reason = d.Fair, d.Excess, d.Reason
		if d.Shed > 0 && a.closer != nil {
			closed, err := a.closer.close(ctx, d.Shed, "rebalance")
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

func (a *Agent) setRebalance(s RebalanceStatus) {
	a.mu.Lock()
	a.rebal = &s
	a.mu.Unlock()
}

// backendView sums every endpoint's view of this host's first backend.
func (a *Agent) backendView(ctx context.Context) ([]ServerLoad, string, error) {
	ctx, cancel := context.WithTimeout(ctx, pushTimeout)
	defer cancel()
	var self target
	byName := map[string]*ServerLoad{}
	var order []string
	for _, e := range a.endpoints {
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
				sl = &ServerLoad{Name: l.Name, Weight: l.Weight}
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
	out := make([]ServerLoad, 0, len(order))
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
