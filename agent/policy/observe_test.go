package policy

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestObserve(t *testing.T) {
	t.Parallel()
	p := DefaultConfig() // stale_after 10s; targets cpu 0.8, memory 0.9
	now := t0
	fresh, stale := now.Add(-time.Second), now.Add(-11*time.Second)
	tests := []struct {
		name    string
		targets *Targets
		in      Readings
		want    Observation
	}{
		{
			name: "the bottleneck of the fresh signals",
			in: Readings{At: now, Connections: 400, ConnectionsAt: now, Peers: 2, Signals: map[string]Reading{
				SignalCPU: {0.4, fresh}, SignalMemory: {0.45, now}, SignalConnections: {400, now}}},
			want: Observation{Connections: 400, Utilisation: 0.5, Bottleneck: SignalCPU, Fresh: true, Peers: 2},
		},
		{
			name: "a stale signal does not count",
			in: Readings{At: now, Connections: 400, ConnectionsAt: now, Peers: 1, Signals: map[string]Reading{
				SignalCPU: {0.72, stale}, SignalMemory: {0.45, now}}},
			want: Observation{Connections: 400, Utilisation: 0.5, Bottleneck: SignalMemory, Fresh: true, Peers: 1},
		},
		{
			name: "every signal stale, one never read: not fresh, partial",
			in: Readings{At: now, Connections: 400, ConnectionsAt: now, Peers: 1, Signals: map[string]Reading{
				SignalCPU: {0.72, stale}, SignalMemory: {}}},
			want: Observation{Connections: 400, Peers: 1, Partial: true},
		},
		{
			name: "a stale connection count: not fresh, no connections",
			in: Readings{At: now, Connections: 400, ConnectionsAt: stale, Peers: 1, Signals: map[string]Reading{
				SignalCPU: {0.4, now}}},
			want: Observation{Utilisation: 0.5, Bottleneck: SignalCPU, Peers: 1},
		},
		{
			name: "no targeted signal: connections alone, fresh with the count",
			in: Readings{At: now, Connections: 400, ConnectionsAt: fresh, Peers: 1, Signals: map[string]Reading{
				SignalPressure: {0.9, now}, SignalConnections: {400, fresh}}},
			targets: &Targets{Pressure: 0},
			want:    Observation{Connections: 400, Fresh: true, Peers: 1},
		},
		{
			name: "connections alone, never counted: not fresh",
			in:   Readings{At: now, Connections: 0, Peers: 1},
			want: Observation{Peers: 1},
		},
		{
			name:    "connections as a targeted signal",
			targets: &Targets{Connections: 1000},
			in: Readings{At: now, Connections: 250, ConnectionsAt: now, Peers: 1, Signals: map[string]Reading{
				SignalConnections: {250, now}}},
			want: Observation{Connections: 250, Utilisation: 0.25, Bottleneck: SignalConnections, Fresh: true, Peers: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := p
			if tt.targets != nil {
				p.Targets = *tt.targets
			}
			if diff := cmp.Diff(tt.want, p.Observe(tt.in)); diff != "" {
				t.Errorf("Observe (-want +got):\n%s", diff)
			}
		})
	}
}
