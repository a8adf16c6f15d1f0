package main

import (
	"testing"
	"time"
)

func TestNewPlan(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                                      string
		conns, haproxies                          int
		wantMax, wantHAProxies, wantApps, wantCli int
	}{
		{"the full run", 100000, 0, 9987, 12, 3, 8},
		{"quick", 10000, 0, 9987, 2, 2, 2},
		{"set by hand", 20000, 3, 9987, 3, 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := newPlan(tt.conns, 4, tt.haproxies, 20000, 25, 32768, 60999)
			if err != nil {
				t.Fatal(err)
			}
			if p.MaxPerHAProxy != tt.wantMax || p.HAProxies != tt.wantHAProxies || p.AppProcs != tt.wantApps || p.ClientProcs != tt.wantCli {
				t.Errorf("newPlan(%d) = max %d, %d HAProxies, %d app and %d client processes; want %d, %d, %d, %d",
					tt.conns, p.MaxPerHAProxy, p.HAProxies, p.AppProcs, p.ClientProcs, tt.wantMax, tt.wantHAProxies, tt.wantApps, tt.wantCli)
			}
		})
	}
	if _, err := newPlan(100000, 4, 10, 20000, 25, 32768, 60999); err == nil {
		t.Error("newPlan with 10 HAProxies for 100,000: no error, want one (10,000 each is past their most)")
	}
}

// TestPortPairs checks the arithmetic the design rests on: with a source
// address per HAProxy no pair comes near the range, while one shared
// source would overflow it once a host is drained.
func TestPortPairs(t *testing.T) {
	t.Parallel()
	p, err := newPlan(100000, 4, 0, 20000, 25, 32768, 60999)
	if err != nil {
		t.Fatal(err)
	}
	pairs := p.portPairs()
	want := []int{12500, 2778, 33334}
	for i, pp := range pairs {
		if pp.Peak != want[i] || pp.Range != 28232 {
			t.Errorf("pair %q: peak %d of %d, want %d of 28232", pp.What, pp.Peak, pp.Range, want[i])
		}
	}
	if pairs[2].Share() <= 1 || pairs[1].Share() >= 0.2 {
		t.Errorf("shares %.2f (per HAProxy) and %.2f (shared source), want under 0.2 and over 1", pairs[1].Share(), pairs[2].Share())
	}
}

func TestShortDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{2 * time.Minute: "2m", 30 * time.Second: "30s", 90 * time.Second: "1m30s", time.Hour: "1h"} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
