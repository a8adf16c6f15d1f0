package policy

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func testRebalance() RebalanceConfig {
	rb := DefaultRebalance()
	rb.Enabled, rb.Sustain, rb.Cooldown, rb.MaxRate = true, 10*time.Second, time.Minute, 0.05
	return rb
}

// TestRebalanceAfterScaleUp walks the decision through a scale-up: four
// equal servers, the new one empty. The old ones, a third above their
// share, need much less than the sustain time to be sure, shed at the
// bounded rate and stop at their fair share.
func TestRebalanceAfterScaleUp(t *testing.T) {
	t.Parallel()
	rb := testRebalance()
	servers := []ServerLoad{{"ws1", 200, 100}, {"ws2", 200, 100}, {"ws3", 200, 100}, {"ws4", 0, 100}}
	var st RebalanceState
	var d RebalanceDecision
	now := t0
	shed := 0
	for i := range 60 {
		st, d = rb.Step(st, servers, "ws1", time.Time{}, now, time.Second)
		if d.Fair != 150 && i == 0 {
			t.Fatalf("fair share = %v, want 150", d.Fair)
		}
		if now.Sub(t0) < time.Second && d.Shed > 0 {
			t.Fatalf("shed %d at once, before any evidence", d.Shed)
		}
		if d.Shed > 0 && shed == 0 && now.Sub(t0) > rb.Sustain/3 {
			t.Errorf("first shed after %v: a server a third above its share should not wait a third of sustain (%v)", now.Sub(t0), rb.Sustain)
		}
		if d.Shed > int(rb.MaxRate*float64(servers[0].Conns))+1 {
			t.Fatalf("shed %d in one second from %d connections, over max_rate %v", d.Shed, servers[0].Conns, rb.MaxRate)
		}
		// The shed connections reconnect to the empty server.
		servers[0].Conns -= d.Shed
		servers[3].Conns += d.Shed
		shed += d.Shed
		now = now.Add(time.Second)
	}
	if servers[0].Conns < 150 {
		t.Errorf("ws1 went below its fair share: %d", servers[0].Conns)
	}
	if shed < 40 {
		t.Errorf("ws1 shed %d connections in a minute, want about 50", shed)
	}
	// ws4 is still under its share (ws2 and ws3 do not shed here), so ws1
	// is not cooling down but has nothing left to shed.
	if d.Shed != 0 || d.Kind != RebalanceUnderShare {
		t.Errorf("last decision %+v, want nothing to shed at the fair share", d)
	}
}

func TestRebalanceWithinMargin(t *testing.T) {
	t.Parallel()
	rb := testRebalance()
	servers := []ServerLoad{{"ws1", 105, 100}, {"ws2", 95, 100}}
	var st RebalanceState
	for i := range 100 {
		var d RebalanceDecision
		st, d = rb.Step(st, servers, "ws1", time.Time{}, t0.Add(time.Duration(i)*time.Second), time.Second)
		if d.Shed != 0 {
			t.Fatalf("shed %d while 5%% above a 10%% margin", d.Shed)
		}
	}
}

func TestRebalanceWeightsDecideTheShare(t *testing.T) {
	t.Parallel()
	rb := testRebalance()
	// ws1 has twice the capacity: 200 of 300 connections is its share.
	servers := []ServerLoad{{"ws1", 200, 200}, {"ws2", 100, 100}, {"ws3", 300, 0}}
	_, d := rb.Step(RebalanceState{}, servers, "ws1", time.Time{}, t0, time.Second)
	if d.Fair != 200 || d.Excess != 0 {
		t.Errorf("fair %v excess %v, want 200 and 0 (drained ws3 is out of rotation)", d.Fair, d.Excess)
	}
	_, d = rb.Step(RebalanceState{}, servers, "ws3", time.Time{}, t0, time.Second)
	if d.Shed != 0 || !strings.Contains(d.Reason, "not in rotation") {
		t.Errorf("drained server: %+v, want no shedding", d)
	}
}

func TestRebalanceLocalHighWater(t *testing.T) {
	t.Parallel()
	rb := testRebalance()
	rb.Sustain = 0
	st, d := rb.StepLocal(RebalanceState{}, 1000, 1.25, t0, time.Second)
	if d.Shed != 20 {
		t.Errorf("shed %d at utilisation 1.25, want 20 (the excess of 200 over %v)", d.Shed, rebalanceSpread)
	}
	_, d = rb.StepLocal(st, 900, 0.9, t0.Add(time.Second), time.Second)
	if d.Shed != 0 || !strings.Contains(d.Reason, "cooling down") {
		t.Errorf("below the mark: %+v, want the round to end", d)
	}
}

// TestRebalanceWaitScalesWithEvidence checks how long a server waits
// before shedding at a steady excess over its share: the sustain time at
// twice the margin, seconds when a new server left it a third above,
// minutes when it is barely over the margin.
func TestRebalanceWaitScalesWithEvidence(t *testing.T) {
	t.Parallel()
	rb := DefaultRebalance() // margin 10%, sustain 30s
	wait := func(conns int) time.Duration {
		// Four servers, the three others at 100: fair share (conns+300)/4.
		servers := []ServerLoad{{"ws1", conns, 100}, {"ws2", 100, 100}, {"ws3", 100, 100}, {"ws4", 100, 100}}
		var st RebalanceState
		for i := range 3600 {
			var d RebalanceDecision
			st, d = rb.Step(st, servers, "ws1", time.Time{}, t0.Add(time.Duration(i)*time.Second), time.Second)
			if d.Shed > 0 {
				return time.Duration(i) * time.Second
			}
		}
		return time.Hour
	}
	for _, tt := range []struct {
		conns    int
		min, max time.Duration
	}{
		{conns: 200, min: time.Second, max: 2 * time.Second},       // 60% above: (0.5/0.1)² = 25 a second
		{conns: 129, min: 25 * time.Second, max: 45 * time.Second}, // 20% above: twice the margin
		{conns: 116, min: 10 * time.Minute, max: 40 * time.Minute}, // 11.5% above: noise
		{conns: 110, min: time.Hour, max: time.Hour},               // within the margin: never
	} {
		if got := wait(tt.conns); got < tt.min || got > tt.max {
			t.Errorf("%d against three at 100: shed after %v, want %v..%v", tt.conns, got, tt.min, tt.max)
		}
	}
}

// TestRebalanceFillingHostHoldsWhatItReceives walks a host that entered
// service empty: while it fills it sheds nothing, even a step above its
// share while arrivals still come in; once full, it is a host like any
// other.
func TestRebalanceFillingHostHoldsWhatItReceives(t *testing.T) {
	t.Parallel()
	rb := DefaultRebalance()
	servers := []ServerLoad{{"ws1", 0, 100}, {"ws2", 200, 100}, {"ws3", 200, 100}}
	var st RebalanceState
	var d RebalanceDecision
	entered := t0
	now := t0
	for i := range 20 {
		servers[0].Conns += 10 // arrivals
		now = t0.Add(time.Duration(i) * time.Second)
		st, d = rb.Step(st, servers, "ws1", entered, now, time.Second)
		if d.Shed != 0 || d.Kind != RebalanceFilling {
			t.Fatalf("second %d with %d connections: %+v, want filling", i, servers[0].Conns, d)
		}
	}
	if !strings.Contains(d.Reason, "still receiving") {
		t.Errorf("reason %q while above its share and rising, want it to say it is still receiving", d.Reason)
	}
	// Arrivals stop above the share (200 of a fair 200 after 20 s... then
	// the others shed nothing and it holds 260 of 220): full, it sheds.
	servers[0].Conns = 260
	shed := 0
	for i := range 120 {
		now = now.Add(time.Second)
		st, d = rb.Step(st, servers, "ws1", entered, now, time.Second)
		if i < int(risingWindow/time.Second) && d.Kind != RebalanceFilling && shed == 0 {
			continue
		}
		servers[0].Conns -= d.Shed
		shed += d.Shed
	}
	if shed == 0 || float64(servers[0].Conns) < d.Fair-1 {
		t.Errorf("once full, the host shed %d and holds %d of a fair %.0f: want it to shed its excess and no more", shed, servers[0].Conns, d.Fair)
	}
}

// TestRebalanceReadiedHostShedsWhatItHeld is the cancelled drain: a host
// that held 300 connections through drain and ready is not filling, and
// sheds for a joiner at once.
func TestRebalanceReadiedHostShedsWhatItHeld(t *testing.T) {
	t.Parallel()
	rb := DefaultRebalance()
	servers := []ServerLoad{{"s1", 300, 100}, {"s2", 200, 100}, {"s3", 100, 100}, {"s4", 0, 100}}
	var st RebalanceState
	var d RebalanceDecision
	first := -1
	for i := range 30 {
		now := t0.Add(time.Duration(i) * time.Second)
		st, d = rb.Step(st, servers, "s1", t0, now, time.Second)
		if d.Kind == RebalanceFilling {
			t.Fatalf("second %d: %q, but the host entered service above its share", i, d.Reason)
		}
		if d.Shed > 0 && first < 0 {
			first = i
		}
		servers[0].Conns -= d.Shed
		servers[3].Conns += d.Shed
	}
	if first < 0 || first > 3 {
		t.Errorf("first shed at second %d, want within 3 s of a join that left a server empty", first)
	}
	if servers[0].Conns != 150 {
		t.Errorf("s1 holds %d after 30 s, want its fair share of 150", servers[0].Conns)
	}
}

// TestRebalanceJoinEndsCooldown checks that a server joining during the
// cooldown after a round is evaluated at once, and that the cooldown says
// why it holds otherwise.
func TestRebalanceJoinEndsCooldown(t *testing.T) {
	t.Parallel()
	rb := DefaultRebalance()
	servers := []ServerLoad{{"ws1", 200, 100}, {"ws2", 0, 100}}
	var st RebalanceState
	var d RebalanceDecision
	now := t0
	for d.Kind != RebalanceDone {
		st, d = rb.Step(st, servers, "ws1", time.Time{}, now, time.Second)
		servers[0].Conns -= d.Shed
		servers[1].Conns += d.Shed
		now = now.Add(time.Second)
		if now.Sub(t0) > time.Minute {
			t.Fatalf("no round ended within a minute: %+v", d)
		}
	}
	st, d = rb.Step(st, servers, "ws1", time.Time{}, now, time.Second)
	if d.Kind != RebalanceCooldown || !strings.Contains(d.Reason, "has not changed") {
		t.Fatalf("after the round: %+v, want a cooldown that says the backend has not changed", d)
	}
	servers = append(servers, ServerLoad{"ws3", 0, 100})
	shedAt := time.Duration(-1)
	for i := range 10 {
		now = now.Add(time.Second)
		st, d = rb.Step(st, servers, "ws1", time.Time{}, now, time.Second)
		if d.Shed > 0 && shedAt < 0 {
			shedAt = time.Duration(i+1) * time.Second
		}
	}
	if shedAt < 0 || shedAt > 3*time.Second {
		t.Errorf("after a join during the cooldown the first shed came at %v, want within 3 s", shedAt)
	}
}

// TestRebalanceJoinersShareIsFilledOnce runs ten hosts, nine at 100 and one
// that joined empty, with each host's rebalancer against the same view as
// HAProxy would show it: each old host sheds only its own small excess
// (11% above its share), the joiner fills within 30 s, and the moves are
// the minimum.
func TestRebalanceJoinersShareIsFilledOnce(t *testing.T) {
	t.Parallel()
	rb := DefaultRebalance()
	var servers []ServerLoad
	for i := range 9 {
		servers = append(servers, ServerLoad{fmt.Sprintf("ws%d", i), 100, 100})
	}
	servers = append(servers, ServerLoad{"new", 0, 100})
	states := make([]RebalanceState, len(servers))
	moved := 0
	var filledAt time.Duration
	for i := range 60 {
		now := t0.Add(time.Duration(i) * time.Second)
		view := append([]ServerLoad(nil), servers...)
		for j := range servers[:9] {
			var d RebalanceDecision
			states[j], d = rb.Step(states[j], view, servers[j].Name, time.Time{}, now, time.Second)
			servers[j].Conns -= d.Shed
			servers[9].Conns += d.Shed // each reconnects to the emptiest
			moved += d.Shed
		}
		if filledAt == 0 && servers[9].Conns >= 81 {
			filledAt = time.Duration(i) * time.Second
		}
	}
	if filledAt == 0 || filledAt > 30*time.Second {
		t.Errorf("the joiner reached 90%% of its share of 90 after %v, want within 30 s (it holds %d)", filledAt, servers[9].Conns)
	}
	if minimum := 90; moved > minimum*13/10 {
		t.Errorf("moved %d connections, more than 1.3x the minimum of %d", moved, minimum)
	}
	for _, s := range servers[:9] {
		if s.Conns < 90 {
			t.Errorf("%s went under its fair share: %d", s.Name, s.Conns)
		}
	}
}

// TestRebalanceSteadyNoiseShedsNothing runs ten minutes of a steady farm
// whose connection counts wander by about 10% (a mean-reverting walk) at
// the shipped defaults: nothing is shed.
func TestRebalanceSteadyNoiseShedsNothing(t *testing.T) {
	t.Parallel()
	rb := DefaultRebalance()
	rng := rand.New(rand.NewPCG(7, 7))
	servers := []ServerLoad{{"ws1", 1000, 100}, {"ws2", 1000, 100}, {"ws3", 1000, 100}, {"ws4", 1000, 100}}
	states := make([]RebalanceState, len(servers))
	shed := 0
	maxDev := 0.0
	for i := range 600 {
		for j := range servers {
			// Mean reversion to 1000 with a time constant of 30s and a
			// stationary standard deviation of about 7%.
			c := float64(servers[j].Conns)
			c += (1000-c)/30 + 18*rng.NormFloat64()
			servers[j].Conns = int(c)
			maxDev = max(maxDev, math.Abs(c-1000)/1000)
		}
		for j := range servers {
			var d RebalanceDecision
			states[j], d = rb.Step(states[j], servers, servers[j].Name, time.Time{}, t0.Add(time.Duration(i)*time.Second), time.Second)
			shed += d.Shed
		}
	}
	if maxDev < 0.1 {
		t.Fatalf("the walk never strayed 10%% (max %.1f%%): the test does not test", 100*maxDev)
	}
	if shed != 0 {
		t.Errorf("shed %d connections in ten minutes of noise (counts strayed up to %.0f%%)", shed, 100*maxDev)
	}
}
