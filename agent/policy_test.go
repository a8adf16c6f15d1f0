package agent

import (
	"math"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	t.Parallel()
	p := PolicyConfig{ConnCapacity: 1000, CPUTarget: 0.8}
	tests := []struct {
		name       string
		in         Inputs
		weight     int
		bottleneck string
	}{
		{"idle", Inputs{}, 100, "connections"},
		{"connections only", Inputs{Connections: 250}, 75, "connections"},
		{"cpu not measured yet", Inputs{Connections: 100, CPUBusy: 0.7}, 90, "connections"},
		{"cpu is the bottleneck", Inputs{Connections: 100, CPUBusy: 0.4, HaveCPU: true}, 50, "cpu"},
		{"connections are the bottleneck", Inputs{Connections: 600, CPUBusy: 0.4, HaveCPU: true}, 40, "connections"},
		{"full never yields 0%", Inputs{Connections: 1000}, 1, "connections"},
		{"overloaded never yields 0%", Inputs{Connections: 5000, CPUBusy: 1, HaveCPU: true}, 1, "connections"},
	}
	for _, tt := range tests {
		d := Decide(p, tt.in)
		if d.WeightPercent != tt.weight || d.Bottleneck != tt.bottleneck {
			t.Errorf("%s: Decide = %d%% (%s), want %d%% (%s)", tt.name, d.WeightPercent, d.Bottleneck, tt.weight, tt.bottleneck)
		}
	}
}

func TestEWMA(t *testing.T) {
	t.Parallel()
	var e ewma
	if got := e.update(0.5, time.Second, 10*time.Second); got != 0.5 {
		t.Fatalf("first update = %v, want the sample itself", got)
	}
	// One time constant later the average has moved 1-1/e of the way.
	got := e.update(1.5, 10*time.Second, 10*time.Second)
	want := 0.5 + (1 - math.Exp(-1))
	if math.Abs(got-want) > 1e-9 {
		t.Errorf("update after one time constant = %v, want %v", got, want)
	}
	var raw ewma
	raw.update(0.2, time.Second, 0)
	if got := raw.update(0.9, time.Second, 0); got != 0.9 {
		t.Errorf("tau 0: update = %v, want the sample itself", got)
	}
}
