package policy

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestComputeFleet(t *testing.T) {
	t.Parallel()
	fc := DefaultFleet()
	settled := time.Hour
	tests := []struct {
		name        string
		servers     []FleetServer
		util        float64
		desired     int
		scaleIn     string
		skippedName []string
	}{
		{
			name: "at target: as many as now",
			servers: []FleetServer{
				{Name: "a", State: StateReady, Weight: 100, Conns: 7500, Since: settled},
				{Name: "b", State: StateReady, Weight: 100, Conns: 7400, Since: settled},
			},
			util: 14900.0 / 20000, desired: 2, scaleIn: "b",
		},
		{
			name: "twice the target: double, the drained host not counted",
			servers: []FleetServer{
				{Name: "a", State: StateReady, Weight: 100, Conns: 15000, Since: settled},
				{Name: "b", State: StateReady, Weight: 50, Conns: 7500, Since: settled},
				{Name: "c", State: StateDrain, Weight: 100, Conns: 900, Since: settled},
				{Name: "d", State: StateMaint, Weight: 0, Since: settled},
			},
			util: 1.5, desired: 4, scaleIn: "b",
		},
		{
			name: "a joiner holds fewest, but it is still filling up",
			servers: []FleetServer{
				{Name: "a", State: StateReady, Weight: 100, Conns: 3000, Since: settled},
				{Name: "b", State: StateReady, Weight: 100, Conns: 2000, Since: settled},
				{Name: "new", State: StateReady, Weight: 100, Conns: 10, Since: 20 * time.Second},
			},
			util: 5010.0 / 30000, desired: 1, scaleIn: "b", skippedName: []string{"new"},
		},
		{
			name:    "one server: nothing to remove",
			servers: []FleetServer{{Name: "a", State: StateReady, Weight: 100, Conns: 100, Since: settled}},
			util:    0.01, desired: 1, skippedName: []string{"a"},
		},
		{
			name:    "nothing in rotation",
			servers: []FleetServer{{Name: "a", State: StateDown, Weight: 100, Conns: 0, Since: settled}},
			desired: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := fc.ComputeFleet(tt.servers, 10000)
			if diff := cmp.Diff(tt.util, f.Utilisation); diff != "" {
				t.Errorf("utilisation (-want +got):\n%s", diff)
			}
			if f.Desired != tt.desired || f.ScaleIn != tt.scaleIn {
				t.Errorf("desired %d, scale-in %q; want %d, %q", f.Desired, f.ScaleIn, tt.desired, tt.scaleIn)
			}
			var skipped []string
			for _, s := range f.Skipped {
				skipped = append(skipped, s.Name)
			}
			if diff := cmp.Diff(tt.skippedName, skipped); diff != "" {
				t.Errorf("skipped (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFleetDesiredFollowsHPA checks desired_servers against HPA's rule:
// ceil(current × metric / target), unchanged within the tolerance.
func TestFleetDesiredFollowsHPA(t *testing.T) {
	t.Parallel()
	fc := FleetConfig{TargetUtilisation: 0.5, Tolerance: 0.1}
	for _, tt := range []struct {
		conns, want int
	}{
		{5000, 4},  // at target
		{5400, 4},  // 8% over: within the tolerance
		{5600, 5},  // 12% over: ceil(4 × 0.56/0.5) = 5
		{10000, 8}, // twice
		{1000, 1},  // a fifth: ceil(0.8)
		{0, 1},     // never below one
	} {
		servers := make([]FleetServer, 4)
		for i := range servers {
			servers[i] = FleetServer{Name: string(rune('a' + i)), State: StateReady, Weight: 50, Conns: tt.conns / 4}
		}
		if got := fc.ComputeFleet(servers, 5000).Desired; got != tt.want {
			t.Errorf("%d connections on 4 hosts of 2,500: desired %d, want %d", tt.conns, got, tt.want)
		}
	}
}
