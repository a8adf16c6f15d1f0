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
