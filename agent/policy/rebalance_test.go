package policy

import (
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
// equal servers, the new one empty. The old ones wait out the sustain
// time, shed at the bounded rate, stop at their fair share and cool down.
func TestRebalanceAfterScaleUp(t *testing.T) {
	t.Parallel()
	rb := testRebalance()
	servers := []ServerLoad{{"ws1", 200, 100}, {"ws2", 200, 100}, {"ws3", 200, 100}, {"ws4", 0, 100}}
	var st RebalanceState
	var d RebalanceDecision
	now := t0
	shed := 0
	for i := range 60 {
		st, d = rb.Step(st, servers, "ws1", now, time.Second)
		if d.Fair != 150 && i == 0 {
			t.Fatalf("fair share = %v, want 150", d.Fair)
		}
		if now.Sub(t0) < rb.Sustain && d.Shed > 0 {
			t.Fatalf("shed %d before the sustain time (%v)", d.Shed, now.Sub(t0))
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
	if !strings.Contains(d.Reason, "cooling down") {
		t.Errorf("last reason %q, want cooling down", d.Reason)
	}
}

func TestRebalanceWithinMargin(t *testing.T) {
	t.Parallel()
	rb := testRebalance()
	servers := []ServerLoad{{"ws1", 105, 100}, {"ws2", 95, 100}}
	var st RebalanceState
	for i := range 100 {
		var d RebalanceDecision
		st, d = rb.Step(st, servers, "ws1", t0.Add(time.Duration(i)*time.Second), time.Second)
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
	_, d := rb.Step(RebalanceState{}, servers, "ws1", t0, time.Second)
	if d.Fair != 200 || d.Excess != 0 {
		t.Errorf("fair %v excess %v, want 200 and 0 (drained ws3 is out of rotation)", d.Fair, d.Excess)
	}
	_, d = rb.Step(RebalanceState{}, servers, "ws3", t0, time.Second)
	if d.Shed != 0 || !strings.Contains(d.Reason, "not in rotation") {
		t.Errorf("drained server: %+v, want no shedding", d)
	}
}

func TestRebalanceLocalHighWater(t *testing.T) {
	t.Parallel()
	rb := testRebalance()
	rb.Sustain = 0
	st, d := rb.StepLocal(RebalanceState{}, 1000, 1.25, t0, time.Second)
	if d.Shed != 50 {
		t.Errorf("shed %d at utilisation 1.25, want 50 (5%% of 1000)", d.Shed)
	}
	_, d = rb.StepLocal(st, 900, 0.9, t0.Add(time.Second), time.Second)
	if d.Shed != 0 || !strings.Contains(d.Reason, "cooling down") {
		t.Errorf("below the mark: %+v, want the round to end", d)
	}
}
