package runtime

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hafeed/hafeed/agent/policy"
	"github.com/hafeed/hafeed/haproxy"
)

// TestFleetCountsUserWeight checks that a server's weight in the fleet
// figures is its user weight, the capacity its agent reported, and not
// HAProxy's effective weight, which slowstart throttles for a while after
// a server leaves maint: counted as capacity, a throttled weight makes the
// backend look full and desired_servers ask for hosts it does not need
// (seen in e2e TestClosedLoop: 225 connections on two hosts just added
// with slowstart 30s, utilisation 2.96, desired_servers 8).
func TestFleetCountsUserWeight(t *testing.T) {
	t.Parallel()
	stat := func(name, status string, weight, uweight, scur int) haproxy.Stat {
		return haproxy.Stat{Proxy: "ws", Server: name, Status: status, Weight: weight, UWeight: uweight, Scur: scur,
			Addr: "127.0.0.1:80" + name[len(name)-1:], Fields: map[string]string{"lastchg": "4"}}
	}
	stats := []haproxy.Stat{
		stat("s1", "UP", 13, 100, 40),    // slowstart, 12% through: weight 13
		stat("s2", "UP", 120, 120, 70),   // in full service
		stat("s3", "DRAIN", 100, 100, 5), // drained: out of rotation by its state
		stat("s4", "MAINT", 100, 50, 0),  // 2.6 leaves the effective weight of a server in maint as it was
		{Proxy: "ws", Server: "BACKEND", Status: "UP", Weight: 233, Scur: 115},
	}
	since := 4 * time.Second
	want := []policy.FleetServer{
		{Name: "s1", Address: "127.0.0.1:801", State: policy.StateReady, Weight: 100, Conns: 40, Since: since},
		{Name: "s2", Address: "127.0.0.1:802", State: policy.StateReady, Weight: 120, Conns: 70, Since: since},
		{Name: "s3", Address: "127.0.0.1:803", State: policy.StateDrain, Weight: 100, Conns: 5, Since: since},
		{Name: "s4", Address: "127.0.0.1:804", State: policy.StateMaint, Weight: 50, Conns: 0, Since: since},
	}
	got := hostRows(stats, []Target{{"ws", "s2"}}, Target{"ws", "s2"})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("fleet rows (-want +got):\n%s", diff)
	}
}
