package metrics

import (
	"testing"
	"time"
)

func TestCountPacer(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := CountPacer{Budget: 0.01}
	if !p.Due(t0) {
		t.Fatal("the first count is not due")
	}
	p.Counted(t0, 100*time.Millisecond)
	if got := p.Spacing(); got != 10*time.Second {
		t.Fatalf("spacing = %v, want 10s for a 100ms count at 1%%", got)
	}
	if p.Due(t0.Add(9 * time.Second)) {
		t.Error("due after 9s")
	}
	if !p.Due(t0.Add(10 * time.Second)) {
		t.Error("not due after 10s")
	}
	p.Soon()
	if !p.Due(t0.Add(time.Second)) {
		t.Error("not due after Soon")
	}
	p.Counted(t0.Add(time.Second), 100*time.Millisecond)
	if p.Due(t0.Add(2 * time.Second)) {
		t.Error("Soon outlived the count it asked for")
	}
	free := CountPacer{}
	free.Counted(t0, time.Second)
	if !free.Due(t0) {
		t.Error("a pacer without a budget must count every time")
	}
}

// TestCountCostIsCPUNotWaiting checks that a count's cost is the CPU its
// thread used, not the time it spent waiting: a count that sleeps 100 ms
// (as one waiting for a CPU on a busy machine does) costs almost nothing,
// and one that burns CPU costs some, never more than its wall time.
func TestCountCostIsCPUNotWaiting(t *testing.T) {
	if cost := CountCost(func() { time.Sleep(100 * time.Millisecond) }); cost >= 50*time.Millisecond {
		t.Errorf("a count that slept 100 ms cost %v, want the little CPU it used", cost)
	}
	var wall time.Duration
	cost := CountCost(func() {
		start := time.Now()
		for x := 0; time.Since(start) < 30*time.Millisecond; x++ {
		}
		wall = time.Since(start)
	})
	if cost <= 0 || cost > wall+time.Millisecond {
		t.Errorf("a count that burned CPU for %v cost %v, want more than 0 and at most its wall time", wall, cost)
	}
}
