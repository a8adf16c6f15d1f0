package runtime

import (
	"slices"
	"strings"
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

// TestMeanWeightIsUserWeight checks that the weight a host without an
// estimate of its own starts from is the mean of the other servers' user
// weights, the capacities their agents report, and not their effective
// weights, which slowstart throttles: the second host of the closed loop
// (e2e TestClosedLoop), started while the first was in its slowstart,
// began at 28% beside its 100% and stayed under half of it for a minute.
func TestMeanWeightIsUserWeight(t *testing.T) {
	t.Parallel()
	f := startFakeRuntime(t)
	f.setServers([3]string{"ws1", "192.0.2.7", "0"}, [3]string{"ws2", "192.0.2.8", "0"}, [3]string{"ws3", "127.0.0.2", "0"})
	f.mu.Lock()
	f.stats = []string{
		"ws,ws1,50,UP,7,100,192.0.2.7:8080,2,6", // 2 s into a 30 s slowstart
		"ws,ws2,60,UP,80,80,192.0.2.8:8080,300,",
		"ws,ws3,0,UP,100,100,127.0.0.2:8080,1,3", // this host
		"ws,BACKEND,110,UP,187,,,300,",
	}
	f.mu.Unlock()
	set, ctx := syncedSet(t, f)
	got, err := set.MeanWeight(ctx)
	if err != nil || got != 90 {
		t.Errorf("MeanWeight = %v, %v; want 90, the mean of ws1's and ws2's user weights", got, err)
	}
	// Rebalancing shares the backend as HAProxy balances it now.
	servers, self, err := set.BackendView(ctx)
	want := []policy.ServerLoad{{Name: "ws1", Conns: 50, Weight: 7}, {Name: "ws2", Conns: 60, Weight: 80}, {Name: "ws3", Conns: 0, Weight: 100}}
	slices.SortFunc(servers, func(a, b policy.ServerLoad) int { return strings.Compare(a.Name, b.Name) })
	if diff := cmp.Diff(want, servers); err != nil || self != "ws3" || diff != "" {
		t.Errorf("BackendView: self %q, err %v, servers (-want +got):\n%s", self, err, diff)
	}
}
