package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hafeed/hafeed/internal/farm"
	"github.com/hafeed/hafeed/metrics"
)

// scenario is one timeline run under every policy.
type scenario struct {
	Name  string `json:"name"`
	Title string `json:"title"`
	// Backends are the farm; the spare one enters service at the event.
	Backends []farm.Backend `json:"-"`
	Duration time.Duration  `json:"-"`
	// Event happens at EventAt: "" (none), "add" (Target enters service),
	// "drain" (Target drained with --shed-rate) or "reload" (HAProxy).
	Event   string        `json:"event,omitempty"`
	Target  string        `json:"target,omitempty"`
	EventAt time.Duration `json:"-"`
	// Window is the steady state measured: the last Window of the run.
	Window time.Duration `json:"-"`

	// The durations in seconds, for -json.
	DurationS float64 `json:"duration_s"`
	EventAtS  float64 `json:"event_at_s,omitempty"`
	WindowS   float64 `json:"window_s"`
}

// withSeconds fills the fields -json shows.
func (sc scenario) withSeconds() scenario {
	sc.DurationS, sc.EventAtS, sc.WindowS = sc.Duration.Seconds(), sc.EventAt.Seconds(), sc.Window.Seconds()
	return sc
}

// timings scale a scenario's durations: full or quick.
type timings struct {
	steady, scaleUp, scaleDown, reload time.Duration
	eventAt, window, eventWindow       time.Duration
}

var (
	fullTimings  = timings{steady: 28 * time.Second, scaleUp: 40 * time.Second, scaleDown: 26 * time.Second, reload: 26 * time.Second, eventAt: 10 * time.Second, window: 10 * time.Second, eventWindow: 8 * time.Second}
	quickTimings = timings{steady: 18 * time.Second, scaleUp: 26 * time.Second, scaleDown: 18 * time.Second, reload: 18 * time.Second, eventAt: 6 * time.Second, window: 6 * time.Second, eventWindow: 6 * time.Second}
)

func scenarios(t timings) []scenario {
	three := farm.DefaultBackends(false)[:3]
	all := []scenario{
		{Name: "steady", Title: "(1) steady state: hot clients first, ws1 at half speed",
			Backends: three, Duration: t.steady, Window: t.window},
		{Name: "scale-up", Title: "(2) scale-up: ws4 enters service (hafeed ready)",
			Backends: farm.DefaultBackends(true), Duration: t.scaleUp, Event: "add", Target: "ws4", EventAt: t.eventAt, Window: t.eventWindow},
		{Name: "scale-down", Title: "(3) scale-down: ws4 drained with hafeed drain --wait --shed-rate",
			Backends: farm.DefaultBackends(false), Duration: t.scaleDown, Event: "drain", Target: "ws4", EventAt: t.eventAt, Window: t.eventWindow},
		{Name: "reload", Title: "(4) HAProxy reload (hard-stop-after closes the old worker's sockets)",
			Backends: three, Duration: t.reload, Event: "reload", EventAt: t.eventAt, Window: t.eventWindow},
	}
	for i := range all {
		all[i] = all[i].withSeconds()
	}
	return all
}

// runResult is one scenario under one policy.
type runResult struct {
	Scenario string    `json:"scenario"`
	Policy   string    `json:"policy"`
	Backends []string  `json:"backends"`
	Speeds   []float64 `json:"speeds"`
	// MaxMeanCPU is the steady state's max/mean CPU over the backends in
	// rotation; WindowCPU each backend's mean CPU (cores) in that window
	// and WindowConns its mean connections.
	MaxMeanCPU  float64   `json:"max_mean_cpu"`
	WindowCPU   []float64 `json:"window_cpu"`
	WindowConns []float64 `json:"window_conns"`
	WindowFrom  float64   `json:"window_from_s"`
	WindowTo    float64   `json:"window_to_s"`
	// FairShareSeconds is, in scale-up, how long the added backend took to
	// reach 90% of the mean CPU of the backends in rotation (3-second
	// averages); -1 when it did not within the run.
	FairShareSeconds float64 `json:"fair_share_s,omitempty"`
	// DrainSeconds is how long hafeed drain --wait took, in scale-down.
	DrainSeconds float64 `json:"drain_s,omitempty"`
	// Moved counts reconnections: connections that ended without the
	// client leaving (shed, drained, hard-stopped) and were made again.
	Moved int `json:"moved"`
	// Shed counts connections the agents closed (drain and rebalance).
	Shed int `json:"shed"`
	// Failures counts clients that stayed disconnected for more than 5 s;
	// Left those still so at the end.
	Failures          int     `json:"failures"`
	Left              int     `json:"left_disconnected"`
	LongestDisconnect float64 `json:"longest_disconnect_s"`
	Lost              int     `json:"lost"`
	Mismatched        int     `json:"mismatched"`
	Messages          int     `json:"messages"`
	Clients           int     `json:"clients"`
	ConnectedAtEnd    int     `json:"connected_at_end"`
	Departures        int     `json:"departures"`
	DialFailures      int     `json:"dial_failures"`
	EchoTimeouts      int     `json:"echo_timeouts"`
	// HostCPU is the whole machine's mean busy fraction during the run.
	HostCPU float64       `json:"host_cpu"`
	Events  []event       `json:"events"`
	Samples []farm.Sample `json:"samples"`
	WallS   float64       `json:"wall_s"`
}

// event is something the run did, at a time since the clients started.
type event struct {
	At   float64 `json:"t"`
	What string  `json:"what"`
}

// run is one scenario under one policy on its farm.
type run struct {
	f        *farm.Farm
	progress io.Writer

	mu     sync.Mutex // guards events
	events []event
}

// record notes what the run did, and says it on the progress output.
func (r *run) record(what string) {
	at := r.f.Elapsed().Seconds()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, event{At: math.Round(at*10) / 10, What: what})
	fmt.Fprintf(r.progress, "    %5.1fs  %s\n", at, what)
}

// runScenario runs one scenario under one policy.
func runScenario(ctx context.Context, e *farm.Env, sc scenario, pol farm.Policy, clientScale float64) (res runResult, err error) {
	started := time.Now()
	res = runResult{Scenario: sc.Name, Policy: pol.Name}
	for _, b := range sc.Backends {
		res.Backends = append(res.Backends, b.Name)
		res.Speeds = append(res.Speeds, b.Speed)
	}
	var setup time.Duration
	f, err := farm.Start(ctx, e, farm.Spec{Name: sc.Name, Backends: sc.Backends, Policy: pol})
	if f != nil {
		defer func() {
			stopping := time.Now()
			stopErr := f.Stop()
			fmt.Fprintf(e.Progress, "    setup %v, teardown %v\n", setup.Round(time.Millisecond), time.Since(stopping).Round(time.Millisecond))
			if err == nil && stopErr != nil {
				err = fmt.Errorf("stopping the farm: %w", stopErr)
			}
		}()
	}
	if err != nil {
		return res, err
	}
	setup = time.Since(started)
	host := &metrics.HostCPU{}
	f.Take(ctx, host) // baselines of the CPU rates
	if err := f.StartClients(ctx, clientScale); err != nil {
		return res, err
	}
	r := &run{f: f, progress: e.Progress}

	eventErr := make(chan error, 1)
	var drainDone float64
	if sc.Event != "" {
		go func() {
			timer := time.NewTimer(sc.EventAt)
			defer timer.Stop()
			select {
			case <-ctx.Done():
				eventErr <- nil
				return
			case <-timer.C:
			}
			eventErr <- r.runEvent(ctx, sc, e.Load.ShedRate, &drainDone)
		}()
	}

	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	for ticks := int(sc.Duration / time.Second); len(res.Samples) < ticks; {
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case err := <-eventErr:
			if err != nil {
				return res, err
			}
		case <-ticker.C:
			res.Samples = append(res.Samples, f.Take(ctx, host))
			if err := f.Failed(); err != nil {
				return res, err
			}
		}
	}
	final := f.Clients()
	res.Shed = f.AgentShed(ctx)
	r.mu.Lock()
	res.Events = append([]event(nil), r.events...)
	r.mu.Unlock()

	tot := final.Total()
	res.Moved, res.Failures, res.Left = tot.Reconnects, tot.Failures, tot.DisconnectedOver
	res.LongestDisconnect = tot.LongestDisconnect.Seconds()
	res.Lost, res.Mismatched, res.Messages = tot.Lost, tot.Mismatched, tot.Messages
	res.Clients, res.ConnectedAtEnd = tot.Clients, tot.Connected
	res.Departures, res.DialFailures, res.EchoTimeouts = tot.Departures, tot.DialFailures, tot.EchoTimeouts
	res.DrainSeconds = drainDone
	res.summarise(sc)
	res.WallS = math.Round(time.Since(started).Seconds()*10) / 10
	return res, nil
}

// runEvent does the scenario's event; a drain sheds at shedRate.
func (r *run) runEvent(ctx context.Context, sc scenario, shedRate float64, drainDone *float64) error {
	a := r.f.Agent(sc.Target)
	switch sc.Event {
	case "add":
		r.record("hafeed ready on " + sc.Target)
		if _, err := a.CLI(ctx, "ready"); err != nil {
			return err
		}
	case "drain":
		r.record(fmt.Sprintf("hafeed drain --wait --shed-rate %g on %s", shedRate, sc.Target))
		begin := time.Now()
		out, err := a.CLI(ctx, "drain", "--wait", "--shed-rate", fmt.Sprint(shedRate), "--timeout", "60s")
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		*drainDone = math.Round(time.Since(begin).Seconds()*10) / 10
		r.record(sc.Target + " " + strings.TrimSpace(out))
	case "reload":
		r.record("HAProxy reload (SIGUSR2 to the master)")
		if err := r.f.HAProxy().Reload(ctx); err != nil {
			return err
		}
		go r.watchHardStop()
	}
	return nil
}

// watchHardStop records when the old HAProxy worker hard-stops, as its
// log says, until the farm stops.
func (r *run) watchHardStop() {
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	for {
		select {
		case <-r.f.Done():
			return
		case <-ticker.C:
		}
		b, err := os.ReadFile(r.f.HAProxy().LogPath())
		if err != nil {
			continue
		}
		if _, line, ok := strings.Cut(string(b), "hard-stopped ("); ok {
			n, _, _ := strings.Cut(line, " ")
			r.record("hard-stop-after: the old worker closes the " + n + " sockets it still holds")
			return
		}
	}
}

// summarise computes the steady-state and scale-up figures from the samples.
func (r *runResult) summarise(sc scenario) {
	end := sc.Duration.Seconds()
	r.WindowFrom, r.WindowTo = end-sc.Window.Seconds(), end
	inRotation := func(i int) bool {
		name := r.Backends[i]
		switch {
		case sc.Event == "drain" && name == sc.Target:
			return false
		case sc.Event == "" || sc.Event == "reload":
			return name != "ws4"
		}
		return true
	}
	n := len(r.Backends)
	r.WindowCPU = make([]float64, n)
	r.WindowConns = make([]float64, n)
	count := 0
	var host float64
	for _, s := range r.Samples {
		host += s.HostCPU
		if s.T <= r.WindowFrom+0.5 {
			continue
		}
		count++
		for i := range n {
			if !math.IsNaN(s.CPU[i]) {
				r.WindowCPU[i] += s.CPU[i]
			}
			r.WindowConns[i] += float64(s.Conns[i])
		}
	}
	if len(r.Samples) > 0 {
		r.HostCPU = round3(host / float64(len(r.Samples)))
	}
	var peak, sum float64
	members := 0
	for i := range n {
		if count > 0 {
			r.WindowCPU[i] = round3(r.WindowCPU[i] / float64(count))
			r.WindowConns[i] = math.Round(r.WindowConns[i] / float64(count))
		}
		if inRotation(i) {
			peak = max(peak, r.WindowCPU[i])
			sum += r.WindowCPU[i]
			members++
		}
	}
	if sum > 0 {
		r.MaxMeanCPU = round3(peak / (sum / float64(members)))
	}
	if sc.Event == "add" {
		r.FairShareSeconds = r.fairShare(sc)
	}
}

// fairShare is how long after the event the target backend's CPU reached
// 90% of the mean over the backends in rotation and stayed there for
// fairHold samples, in 3-sample averages; -1 if it did not in the run.
func (r *runResult) fairShare(sc scenario) float64 {
	target := slices.Index(r.Backends, sc.Target)
	at := sc.EventAt.Seconds()
	const span, fairHold = 3, 5
	reached := make([]bool, len(r.Samples))
	for k := span - 1; k < len(r.Samples); k++ {
		var mine, all float64
		for _, s := range r.Samples[k-span+1 : k+1] {
			for i, c := range s.CPU {
				if math.IsNaN(c) {
					continue
				}
				all += c
				if i == target {
					mine += c
				}
			}
		}
		mean := all / float64(len(r.Backends))
		reached[k] = mean > 0 && mine >= 0.9*mean
	}
	for k := range r.Samples {
		if r.Samples[k].T < at || k+fairHold > len(r.Samples) {
			continue
		}
		if !slices.Contains(reached[k:k+fairHold], false) {
			return math.Round((r.Samples[k].T-at)*10) / 10
		}
	}
	return -1
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }
