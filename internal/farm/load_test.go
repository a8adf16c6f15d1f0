package farm

import "testing"

// TestLoadSizing checks the derived settings the agents get.
func TestLoadSizing(t *testing.T) {
	l := DefaultLoad()
	l.HashNanos = 75
	if got := l.MessagesPerSecond(); got != 800 {
		t.Errorf("messages per second %v, want 800", got)
	}
	if got := l.DemandCores(); got < 0.599 || got > 0.601 {
		t.Errorf("demand %v cores, want 0.6", got)
	}
	if got := l.ReferenceCapacity(); got != 560 {
		t.Errorf("reference capacity %d, want 560 (0.4 cores at 0.6/840 cores a connection)", got)
	}
	if got, want := l.Work(0.5), 2*l.Work(1); got != want {
		t.Errorf("work at half speed %d, want twice speed 1's: %d", got, want)
	}
}
