package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hafeed/hafeed/internal/haproxytest"
)

// TestSuccessiveJoins is the farm an autoscaler changes again and again, at
// the shipped defaults plus rebalance.enabled: five Node.js servers with a
// CPU baseline and idle sockets, two of them holding 600 clients. s1's
// drain is cancelled (drain, then ready 2 s later); then s3, s4 and s5 join
// 20 s apart. 30 s after the last join every host holds 90-115% of its
// fair share and no client was without a connection for more than 5 s;
// then, steady for a minute, nothing is shed.
//
// Before rebalancing followed the backend (issue 16) the hosts held
// s1 300, s2 193, s3 107, s4 0, s5 0 at that point: s1 would not shed
// because it had "recently entered service", s2 sat in its cooldown.
//
// It runs on every HAProxy line, one after the other: each run holds 600
// sockets and five agents, too much to run side by side on two cores. The
// steady minute, which asks nothing of HAProxy but its stats, runs on the
// system's line only.
func TestSuccessiveJoins(t *testing.T) {
	for i, hb := range append([]haproxytest.Build{systemHAProxy}, matrixHAProxies...) {
		t.Run(hb.Name(), func(t *testing.T) { successiveJoins(t, hb, i == 0) })
	}
	if len(matrixHAProxies) == 0 {
		t.Run("haproxy-3.x", func(t *testing.T) { t.Skip(haproxytest.MatrixUnset) })
	}
}

func successiveJoins(t *testing.T, hb haproxytest.Build, steadyMinute bool) {
	const hosts, clients = 5, 600
	hp := newHAProxyOf(t, hb)
	agents, servers := startNodeFarm(t, hp, "s", hosts, 2)
	pop := connectIdleClients(t, hp, clients)
	counts := func() string {
		var parts []string
		for _, s := range servers {
			st := hp.stat(s.Name)
			parts = append(parts, fmt.Sprintf("%s=%s (weight %s, %s)", s.Name, st["scur"], st["weight"], st["status"]))
		}
		return strings.Join(parts, " ")
	}
	defer func() {
		if t.Failed() {
			for i, h := range agents {
				for _, line := range strings.Split(h.logs(), "\n") {
					if strings.Contains(line, "rebalance") {
						t.Logf("s%d: %s", i+1, line)
					}
				}
			}
		}
	}()
	t.Logf("FIGURE successive joins: start %s", counts())

	// The cancelled drain.
	agents[0].mustCLI("drain")
	time.Sleep(2 * time.Second)
	agents[0].mustCLI("ready")
	// Three joins, 20 s apart. At each, the least that must move is what
	// the hosts hold above their share once the joiner is in.
	minimum := 0
	for i, h := range agents[2:] {
		joiner := servers[i+2].Name
		inService := i + 3
		total := 0
		scur := make([]int, inService)
		for j := range scur {
			scur[j] = atoi(t, hp.stat(servers[j].Name)["scur"])
			total += scur[j]
		}
		for _, n := range scur {
			minimum += max(0, n-total/inService)
		}
		ready := h.mustCLI("ready")
		reached := "not within 20 s"
		for time.Since(ready) < 20*time.Second {
			if float64(atoi(t, hp.stat(joiner)["scur"])) >= 0.9*float64(total)/float64(inService) {
				reached = time.Since(ready).Round(100 * time.Millisecond).String()
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("FIGURE successive joins: %s ready, at 90%% of its share after %s; %s", joiner, reached, counts())
		time.Sleep(time.Until(ready.Add(20 * time.Second)))
	}
	time.Sleep(10 * time.Second) // 30 s after the last join

	// Every host within 90-115% of its fair share: its weight's share of
	// the connections, as the rebalancer reads it from HAProxy.
	check := func() (string, bool) {
		var total, weights float64
		stats := make([]map[string]string, hosts)
		for i, s := range servers {
			stats[i] = hp.stat(s.Name)
			total += float64(atoi(t, stats[i]["scur"]))
			weights += float64(atoi(t, stats[i]["weight"]))
		}
		ok := weights > 0
		var parts []string
		for i, s := range servers {
			fair := float64(atoi(t, stats[i]["weight"])) * total / weights
			held := float64(atoi(t, stats[i]["scur"]))
			parts = append(parts, fmt.Sprintf("%s %.0f of %.0f (%.0f%%)", s.Name, held, fair, 100*held/fair))
			ok = ok && held >= 0.9*fair && held <= 1.15*fair
		}
		return strings.Join(parts, ", "), ok
	}
	shares, ok := check()
	if !ok {
		var why []string
		for i, h := range agents {
			if r := h.status().Rebalance; r != nil {
				why = append(why, fmt.Sprintf("s%d shed %d: %s", i+1, r.Shed, r.Reason))
			}
		}
		t.Errorf("30 s after the last join the hosts hold %s; want each within 90-115%% of its fair share; %q", shares, why)
	}
	if down := pop.longestDown(); down > 5*time.Second {
		t.Errorf("a client was without a connection for %v, want at most 5 s", down)
	}
	shedAt := func() []int {
		var out []int
		for _, h := range agents {
			n := 0
			if r := h.status().Rebalance; r != nil {
				n = r.Shed
			}
			out = append(out, n)
		}
		return out
	}
	converged := shedAt()
	moved := 0
	for _, n := range converged {
		moved += n
	}
	if float64(moved) > 1.3*float64(minimum) {
		t.Errorf("rebalancing moved %d connections, more than 1.3x the %d that had to move", moved, minimum)
	}
	t.Logf("FIGURE successive joins: 30 s after the last join %s; shed by rebalancing %v (%d, the least that had to move: %d); %d reconnects; longest without a connection %v",
		shares, converged, moved, minimum, pop.reconnects.Load(), pop.longestDown().Round(10*time.Millisecond))

	if !steadyMinute {
		return
	}
	// Steady for a minute: nothing more is shed.
	time.Sleep(time.Minute)
	if after := shedAt(); fmt.Sprint(after) != fmt.Sprint(converged) {
		t.Errorf("in the steady minute after convergence the hosts shed %v (totals before %v), want nothing", after, converged)
	}
	shares, _ = check()
	t.Logf("FIGURE successive joins: after a steady minute %s", shares)
}
