package main

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"text/tabwriter"
	"time"

	hpolicy "github.com/hafeed/hafeed/agent/policy"
)

// The autoscaled farm (issue 16): the farm an autoscaler keeps changing.
// It grows from autoscaledMin to autoscaledMax hosts in steps 15-30 s
// apart, then shrinks back by draining hosts one by one (with shedding,
// as `hafeed drain --wait --shed-rate` does), with cancelled drains (drain,
// then ready 2 s later) mixed in, and ends with ten steady minutes. Every
// agent rebalances at the shipped defaults.
const (
	autoscaledMin = 4
	autoscaledMax = 10
	// autoscaledConns is the connection population: 60 % CPU on the four
	// hosts it starts with.
	autoscaledConns = 4000
	// autoscaledShedRate is the drains' --shed-rate.
	autoscaledShedRate = 50
	// autoscaledSteady is the steady time after the last event.
	autoscaledSteady = 600
)

// autoEvent is one thing the autoscaler or an operator does.
type autoEvent struct {
	At   int    // seconds from the start
	Kind string // join, drain (scale-in, shedding), cancel (drain, ready 2 s later)
	Host int
}

// StepResult is what one event took.
type StepResult struct {
	At    int    `json:"at_s"`
	Kind  string `json:"kind"`
	Host  string `json:"host"`
	Hosts int    `json:"hosts_in_rotation"`
	// Reach90 is, for a host entering service, the seconds until it held
	// 90 % of its fair share (its weight's share of the connections); nil
	// if not before the next event.
	Reach90 *float64 `json:"reach_90_s,omitempty"`
	// Moved is what the agents closed to move (rebalancing and the drain's
	// shedding) until the next event; Minimum the least that had to move:
	// for a drain, what the drained host held, otherwise what the hosts
	// held above their fair shares right after the event.
	Moved   int `json:"moved"`
	Minimum int `json:"minimum"`
}

// AutoscaledResult is the autoscaled farm's run.
type AutoscaledResult struct {
	Steps []StepResult `json:"steps"`
	// Moved and Minimum add up the steps'; SteadyMoved is what was closed
	// in the steady minutes after the last event.
	Moved       int     `json:"moved"`
	Minimum     int     `json:"minimum"`
	SteadyMoved int     `json:"steady_moved"`
	Refused     int     `json:"refused"`
	WallSeconds float64 `json:"wall_s"`
}

// autoscaledEvents draws the timeline: six joins, a cancelled drain after
// the second and the fifth, then six drains of the newest hosts, a
// cancelled one among them; 15-30 s apart.
func autoscaledEvents(seed uint64) []autoEvent {
	rng := rand.New(rand.NewPCG(seed, streamEvents))
	at := 120 // the first event after two minutes of warm-up
	var events []autoEvent
	add := func(kind string, host int) {
		events = append(events, autoEvent{At: at, Kind: kind, Host: host})
		at += 15 + rng.IntN(16)
	}
	for h := autoscaledMin; h < autoscaledMax; h++ {
		add("join", h)
		if h == autoscaledMin+1 || h == autoscaledMin+4 {
			add("cancel", rng.IntN(h))
		}
	}
	for h := autoscaledMax - 1; h >= autoscaledMin; h-- {
		if h == autoscaledMax-3 {
			add("cancel", rng.IntN(h+1))
		}
		add("drain", h)
	}
	return events
}

// runAutoscaled runs the autoscaled farm with seed.
func runAutoscaled(seed uint64) (AutoscaledResult, error) {
	start := time.Now()
	events := autoscaledEvents(seed)
	end := events[len(events)-1].At + 60 + autoscaledSteady
	sc := Scenario{Name: "autoscaled", Hosts: autoscaledMax - 1, Connections: autoscaledConns * autoscaledMax / autoscaledMin,
		HAProxies: 3, Baseline: [2]float64{0, 0.25},
		Timeline: Timeline{WarmUp: 60, ScaleUp: end - 3, Drain: end - 2, Noisy: end - 1, End: end + 121}}
	cfg := hpolicy.DefaultConfig()
	cfg.ReferenceCapacity = newFleet(sc, seed).referenceCapacity(cfg.Targets.CPU)
	s, err := newSimulation(sc, policies[3], cfg, seed, false)
	if err != nil {
		return AutoscaledResult{}, err
	}
	return s.runAutoscaled(events, end, start), nil
}

// runAutoscaled simulates events until end (seconds).
func (s *simulation) runAutoscaled(events []autoEvent, end int, wall time.Time) AutoscaledResult {
	var res AutoscaledResult
	for h := range len(s.total) {
		s.startAgent(h, -preJoin*stepsPerSecond)
	}
	for k := -preJoin * stepsPerSecond; k < 0; k++ {
		for _, h := range s.samples[(k%agentSample+agentSample)%agentSample] {
			s.sample(int(h), k)
		}
	}
	for h := range autoscaledMin {
		s.join(h, 0)
	}
	s.rate = autoscaledConns / meanLifetime
	for range autoscaledConns {
		lb := s.arrivals.IntN(len(s.lbs))
		s.connect(0, lb, s.arrivals.Float64() < hotFraction, s.life.residual(s.arrivals.Float64()))
	}
	s.nextArrival = s.arrivals.ExpFloat64() / s.rate

	var (
		step     *StepResult
		entering = -1    // the host whose share a step waits for
		enterAt  float64 // when it entered
		shedding = -1    // the host a drain's shedding empties
		readyAt  = map[int]int{}
		next     = 0
		lastEnd  = events[len(events)-1].At
	)
	finish := func() {
		if step != nil {
			res.Steps = append(res.Steps, *step)
			res.Moved += step.Moved
			res.Minimum += step.Minimum
		}
	}
	for k := range end * stepsPerSecond {
		sec := k / stepsPerSecond
		if k%stepsPerSecond == 0 {
			for h, at := range readyAt {
				if at == sec {
					s.undrain(h, k)
					delete(readyAt, h)
					entering, enterAt = h, float64(sec)
					step.Minimum = s.excessOverShares()
					step.Hosts = s.inRotation()
				}
			}
			for next < len(events) && events[next].At == sec {
				e := events[next]
				next++
				finish()
				step = &StepResult{At: e.At, Kind: e.Kind, Host: s.names[e.Host]}
				entering = -1
				switch e.Kind {
				case "join":
					s.startAgent(e.Host, k)
					s.join(e.Host, k)
					entering, enterAt = e.Host, float64(sec)
					step.Minimum = s.excessOverShares()
				case "cancel":
					s.drain(e.Host)
					readyAt[e.Host] = sec + 2
				case "drain":
					s.drain(e.Host)
					shedding = e.Host
					step.Minimum = int(s.total[e.Host])
				}
				step.Hosts = s.inRotation()
			}
		}
		s.advance(k)
		if step != nil && sec > 0 && (k+1)%stepsPerSecond == 0 {
			if entering >= 0 && step.Reach90 == nil {
				if fair := s.fairShare(entering); fair > 0 && float64(s.total[entering]) >= 0.9*fair {
					v := float64(sec+1) - enterAt
					step.Reach90 = &v
				}
			}
		}
		// The drain's shedding job: at most the rate, until the host is empty.
		if shedding >= 0 && k%stepsPerSecond == 0 {
			if n := min(autoscaledShedRate, int(s.total[shedding])); n > 0 {
				moved := s.shed(shedding, k, n)
				if step != nil {
					step.Moved += moved
				}
			} else {
				shedding = -1
			}
		}
		if sec > lastEnd+60 {
			res.SteadyMoved += s.res.ConnectionsMoved
			s.res.ConnectionsMoved = 0
		} else if step != nil {
			step.Moved += s.res.ConnectionsMoved
			s.res.ConnectionsMoved = 0
		}
	}
	finish()
	res.Refused = s.res.Refused
	res.WallSeconds = time.Since(wall).Seconds()
	return res
}

// undrain puts a drained host back in rotation, as hafeed ready does: it
// enters service again, holding what it has.
func (s *simulation) undrain(h, k int) {
	s.drained[h] = false
	s.agents[h].joinedAt = epoch.Add(time.Duration(k) * step)
	for _, lb := range s.lbs {
		lb.set(h, lb.weight[h], lb.maxconn[h], true)
	}
}

// inRotation counts the hosts in rotation.
func (s *simulation) inRotation() int {
	n := 0
	for h := range s.joined {
		if s.joined[h] && !s.drained[h] {
			n++
		}
	}
	return n
}

// fairShare is host h's weight's share of the connections of the hosts in
// rotation, as HAProxy's view gives it.
func (s *simulation) fairShare(h int) float64 {
	var total, weights float64
	for _, v := range s.backendView() {
		if v.Weight > 0 {
			total += float64(v.Conns)
			weights += float64(v.Weight)
		}
	}
	if weights == 0 {
		return 0
	}
	return float64(s.lbs[0].weight[h]) * total / weights
}

// excessOverShares is what the hosts in rotation hold above their fair
// shares: the least that must move to balance them.
func (s *simulation) excessOverShares() int {
	n := 0.0
	for h := range s.total {
		if s.joined[h] && !s.drained[h] {
			n += max(0, float64(s.total[h])-s.fairShare(h))
		}
	}
	return int(math.Round(n))
}

// writeAutoscaled prints the autoscaled farm's steps.
func writeAutoscaled(w io.Writer, seed uint64, r AutoscaledResult) error {
	fmt.Fprintf(w, "autoscaled farm, seed %d: %d to %d hosts and back, %d connections, defaults + rebalance.enabled\n\n", seed, autoscaledMin, autoscaledMax, autoscaledConns)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "at\tevent\thost\tin rotation\tshare 90%\tmoved\tminimum\t")
	for _, st := range r.Steps {
		reach := "-"
		if st.Kind != "drain" {
			reach = "never"
			if st.Reach90 != nil {
				reach = fmt.Sprintf("%.0f s", *st.Reach90)
			}
		}
		fmt.Fprintf(tw, "%d s\t%s\t%s\t%d\t%s\t%d\t%d\t\n", st.At, st.Kind, st.Host, st.Hosts, reach, st.Moved, st.Minimum)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	ratio := math.NaN()
	if r.Minimum > 0 {
		ratio = float64(r.Moved) / float64(r.Minimum)
	}
	_, err := fmt.Fprintf(w, "\nmoved %d, the least that had to move %d (%.2fx); %d moved in the %d steady minutes after; %d refused; %.1f s wall\n"+
		"share 90%%: seconds from ready until the host held 90%% of its fair share (its weight's share of the connections)\n",
		r.Moved, r.Minimum, ratio, r.SteadyMoved, autoscaledSteady/60, r.Refused, r.WallSeconds)
	return err
}
