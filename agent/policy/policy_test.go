package policy

import (
	"math"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// testPolicy is the default policy with a reference capacity of 1000 and
// no smoothing, so that one step shows the estimate.
func testPolicy() PolicyConfig {
	p := DefaultConfig()
	p.ReferenceCapacity = 1000
	p.Smoothing = 0
	return p
}

// settled is a state past the blackout with an estimate and a weight.
func settled(capacity float64, weight int) State {
	return State{Start: t0.Add(-time.Hour), Capacity: capacity, WeightPercent: weight, LastAt: t0.Add(-time.Second), LastFresh: t0.Add(-time.Second)}
}

func TestPolicyStep(t *testing.T) {
	t.Parallel()
	fresh := func(conns int, u float64) Observation {
		return Observation{Connections: conns, Utilisation: u, Bottleneck: "cpu", Fresh: true, Peers: 1}
	}
	tests := []struct {
		name     string
		policy   func(*PolicyConfig)
		prev     State
		obs      Observation
		weight   int
		capacity float64 // -1: not checked
		reason   string
	}{
		{"blackout reports no weight but estimates", nil, State{Start: t0.Add(-time.Second)}, fresh(500, 0.5), 0, 1000, "blackout"},
		{"first estimate at the reference", nil, settled(0, 0), fresh(500, 0.5), 100, 1000, "first capacity estimate"},
		{"twice the reference capacity", nil, settled(0, 0), fresh(500, 0.25), 200, 2000, "first capacity estimate"},
		{"capped at 256%", nil, settled(0, 0), fresh(5000, 0.1), 256, 50000, "first capacity estimate"},
		{"never 0% from load", nil, settled(0, 0), fresh(10, 1), 1, -1, "first capacity estimate"},
		{"near idle and empty: the headroom at the reference cost", nil, settled(0, 0), fresh(3, 0.01), 99, 990, "from headroom 99% (baseline 0.01 measured)"},
		{"idle sockets: the headroom, not the count", nil, settled(1500, 150), fresh(500, 0.01), 120, 990, "from headroom 99%"},
		{"a busy host with few connections has little headroom", nil, settled(1500, 150), fresh(5, 0.9), 120, 100, "headroom 10% (baseline 0.90 measured)"},
		{"a step moves at most max_step a second", nil, settled(1000, 100), fresh(500, 0.25), 125, 2000, "by at most 25% a second"},
		{"a step down moves at most max_step a second", nil, settled(1000, 100), fresh(100, 1), 80, -1, "by at most 25% a second"},
		{"within the dead band the weight stays", nil, settled(1000, 100), fresh(505, 0.5), 100, 1010, "dead band"},
		{"outside the dead band it moves", nil, settled(1000, 100), fresh(600, 0.5), 120, 1200, "capacity estimate"},
		{"no fresh signal holds the weight", nil, settled(1000, 80), Observation{Connections: 900}, 80, 1000, "holding the last weight (fail-static)"},
		{"no signal yet", nil, State{Start: t0.Add(-time.Hour)}, Observation{Connections: 900}, 0, 0, "no load signal yet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := testPolicy()
			if tt.policy != nil {
				tt.policy(&p)
			}
			next, d := p.Step(tt.prev, tt.obs, t0)
			if d.WeightPercent != tt.weight || (tt.capacity >= 0 && math.Abs(d.Capacity-tt.capacity) > 1e-6) {
				t.Errorf("Step = weight %d%% capacity %.1f (%s), want %d%% capacity %.1f", d.WeightPercent, d.Capacity, d.Reason, tt.weight, tt.capacity)
			}
			if tt.reason == "" || !strings.Contains(d.Reason, tt.reason) {
				t.Errorf("reason %q does not say %q", d.Reason, tt.reason)
			}
			if d.WeightPercent > 0 && next.WeightPercent != d.WeightPercent {
				t.Errorf("state weight %d, decision %d", next.WeightPercent, d.WeightPercent)
			}
		})
	}
}

// TestPolicySmoothing checks that the inputs follow a step with the
// smoothing time constant: after one, 1-1/e of the way.
func TestPolicySmoothing(t *testing.T) {
	t.Parallel()
	p := testPolicy()
	p.Smoothing = 10 * time.Second
	st := State{Start: t0.Add(-time.Hour)}
	st, _ = p.Step(st, Observation{Connections: 500, Utilisation: 0.5, Fresh: true}, t0)
	st, _ = p.Step(st, Observation{Connections: 500, Utilisation: 0.25, Fresh: true}, t0.Add(10*time.Second))
	want := 0.5 + (0.25-0.5)*(1-math.Exp(-1))
	if math.Abs(st.SmoothU-want) > 1e-9 {
		t.Errorf("utilisation after one time constant = %.4f, want %.4f", st.SmoothU, want)
	}
}

// TestPolicyIsStableUnderSteadyLoad runs the policy for an hour of samples
// on a host whose utilisation is proportional to its connections, with
// noise and a connection count that wanders: once settled, the weight does
// not move, because the capacity estimate does not depend on the count.
func TestPolicyIsStableUnderSteadyLoad(t *testing.T) {
	t.Parallel()
	p := DefaultConfig()
	p.ReferenceCapacity = 1000
	const trueCapacity = 1500.0
	var st State
	var d Decision
	changes := 0
	last := 0
	for i := range 3600 {
		now := t0.Add(time.Duration(i) * time.Second)
		conns := 600 + 300*math.Sin(float64(i)/200)
		noise := 1 + 0.03*math.Sin(float64(i)*7.3)
		obs := Observation{Connections: int(conns), Utilisation: conns / trueCapacity * noise, Fresh: true, Peers: 2}
		st, d = p.Step(st, obs, now)
		if i > 120 && d.WeightPercent != last {
			changes++
		}
		last = d.WeightPercent
	}
	if d.WeightPercent < 140 || d.WeightPercent > 160 {
		t.Errorf("settled weight = %d%%, want about 150%% (capacity 1500 / reference 1000)", d.WeightPercent)
	}
	if changes > 5 {
		t.Errorf("weight changed %d times in the hour after settling, want at most 5", changes)
	}
}

func TestPolicyOverloadGuard(t *testing.T) {
	t.Parallel()
	p := testPolicy()
	p.HighWater = 1.25
	p.Maxconn = 3000
	st := settled(1000, 100)
	st, d := p.Step(st, Observation{Connections: 1500, Utilisation: 1.5, Fresh: true, Peers: 2}, t0)
	// Capacity 1000 at utilisation 1: 1250 at the mark, split over 2 HAProxies.
	if !d.SendMaxconn || d.Maxconn != 625 {
		t.Fatalf("overloaded: maxconn %d (send %v), want 625", d.Maxconn, d.SendMaxconn)
	}
	st, d = p.Step(st, Observation{Connections: 1200, Utilisation: 1.2, Fresh: true, Peers: 2}, t0.Add(time.Second))
	if !d.SendMaxconn || d.Maxconn != 625 {
		t.Errorf("between 90%% of the mark and the mark the cap stays: maxconn %d (send %v)", d.Maxconn, d.SendMaxconn)
	}
	st, d = p.Step(st, Observation{Connections: 1000, Utilisation: 1.0, Fresh: true, Peers: 2}, t0.Add(2*time.Second))
	if !d.SendMaxconn || d.Maxconn != 3000 {
		t.Errorf("below the mark the configured maxconn is restored: maxconn %d (send %v), want 3000", d.Maxconn, d.SendMaxconn)
	}
	_, d = p.Step(st, Observation{Connections: 1000, Utilisation: 1.0, Fresh: true, Peers: 2}, t0.Add(2*time.Second+maxconnRelease+time.Second))
	if d.SendMaxconn {
		t.Errorf("after the release window maxconn is still sent: %d", d.Maxconn)
	}
	p.HighWater = 0
	if _, d := p.Step(settled(1000, 100), Observation{Connections: 5000, Utilisation: 5, Fresh: true}, t0); d.SendMaxconn {
		t.Errorf("high_water 0 still sends maxconn")
	}
}

func TestCombine(t *testing.T) {
	t.Parallel()
	targets := Targets{CPU: 0.8, Memory: 0.5, App: 1}
	tests := []struct {
		name       string
		mix        map[string]float64
		values     map[string]float64
		want       float64
		bottleneck string
		ok         bool
	}{
		{"nothing", nil, map[string]float64{}, 0, "", false},
		{"untargeted signals are left out", nil, map[string]float64{"pressure": 0.9, "connections": 100}, 0, "", false},
		{"bottleneck", nil, map[string]float64{"cpu": 0.4, "memory": 0.4, "app": 0.2}, 0.8, "memory", true},
		{"weighted mix", map[string]float64{"cpu": 3, "app": 1}, map[string]float64{"cpu": 0.4, "memory": 0.45, "app": 0.2}, (3*0.5 + 0.2) / 4, "cpu", true},
	}
	for _, tt := range tests {
		u, b, ok := Combine(targets, tt.mix, tt.values)
		if math.Abs(u-tt.want) > 1e-9 || b != tt.bottleneck || ok != tt.ok {
			t.Errorf("%s: Combine = %v %q %v, want %v %q %v", tt.name, u, b, ok, tt.want, tt.bottleneck, tt.ok)
		}
	}
}

// TestPolicyOverloadNeedsConnections checks that a host whose load does not
// come from its connections (near idle, another process busy) is not capped.
func TestPolicyOverloadNeedsConnections(t *testing.T) {
	t.Parallel()
	p := testPolicy()
	_, d := p.Step(settled(0, 100), Observation{Connections: 2, Utilisation: 1.6, Fresh: true, Peers: 1}, t0)
	if d.SendMaxconn {
		t.Errorf("near idle but busy host capped at maxconn %d", d.Maxconn)
	}
}
