package e2e

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hafeed/hafeed/internal/haproxytest"
	"github.com/hafeed/hafeed/internal/testutil"
)

// propagationLimit is what the issue allows for a CLI change to show in
// HAProxy: two agent intervals.
const propagationLimit = 2 * agentInter

// loadConfig scores the load the test application reports in a file
// (sources.app.file, written by hafeed.setUtil) and turns off damping, so
// that tests can predict the weight: capacity = connections / utilisation,
// and weight% = capacity, with a reference capacity of 100 connections.
const loadConfig = `
sources:
  cpu: none
  memory: none
  # Count at every interval: paced by the default budget, which charges a
  # count its wall time, one count that waited for a CPU on the loaded
  # machine put the next 5 s away, past the tests' waits.
  count_budget: 0
  app:
    file: {{.UtilFile}}
policy:
  reference_capacity: 100
  targets:
    app: 1
  smoothing: 0s
  dead_band: 0
  max_step: 100
  blackout: 0s
  min_connections: 1
  idle_utilisation: 0.01
  high_water: 0
`

// setup starts one app port, its hafeed and the system's HAProxy polling
// it as ws1.
func setup(t *testing.T) (*app, *hafeed, *haproxyProc) {
	t.Helper()
	return setupOn(t, systemHAProxy)
}

// setupOn is setup with a given HAProxy build.
func setupOn(t *testing.T, hb haproxytest.Build) (*app, *hafeed, *haproxyProc) {
	t.Helper()
	a := startApp(t)
	h := startHafeed(t, hafeedOptions{config: loadConfig, appPort: a.port()})
	hp := startHAProxyOf(t, hb, haproxyServer{Name: "ws1", AppPort: a.port(), AgentPort: h.agentPort()})
	hp.waitPolled("ws1")
	return a, h, hp
}

func TestWeightFollowsAgent(t *testing.T) {
	t.Parallel()
	forEachHAProxy(t, func(t *testing.T, hb haproxytest.Build) {
		a, h, hp := setupOn(t, hb)
		for _, step := range []struct {
			conns int
			util  float64
		}{{30, 0.5}, {55, 0.25}, {10, 0.5}, {40, 0.8}} {
			if n := len(a.clients); step.conns > n {
				a.connect(step.conns - n)
			} else {
				a.disconnect(n - step.conns)
			}
			h.setUtil(step.util)
			want := int(float64(step.conns) / step.util)
			took := hp.waitFor("ws1", 5*time.Second, fmt.Sprintf("uweight %d", want), func(s serverState) bool { return s.UWeight == want })
			t.Logf("PROPAGATION weight %d%% (%d connections at utilisation %.2f): %v", want, step.conns, step.util, took.Round(time.Millisecond))
			if st := hp.stat("ws1"); st["weight"] != fmt.Sprint(want) {
				t.Errorf("show stat weight = %s, want %d", st["weight"], want)
			}
		}
	})

}

func TestDrainReadyMaint(t *testing.T) {
	t.Parallel()
	forEachHAProxy(t, func(t *testing.T, hb haproxytest.Build) {
		_, h, hp := setupOn(t, hb)
		steps := []struct {
			cmd  string
			what string
			ok   func(serverState) bool
			stat string
		}{
			{"drain", "forced drain", func(s serverState) bool { return s.drained() && !s.maint() }, "DRAIN"},
			{"ready", "ready", func(s serverState) bool { return s.readyAdmin() && s.UWeight == 100 }, "UP"},
			{"maint", "forced maint", func(s serverState) bool { return s.maint() && s.OpState == 0 }, "MAINT"},
			{"ready", "ready", func(s serverState) bool { return s.readyAdmin() && s.OpState == 2 }, "UP"},
		}
		for _, step := range steps {
			since := h.mustCLI(step.cmd)
			took := hp.waitSince(since, "ws1", propagationLimit, step.what, step.ok)
			t.Logf("PROPAGATION hafeed %s -> %s in HAProxy: %v", step.cmd, step.what, took.Round(time.Millisecond))
			if got := hp.stat("ws1")["status"]; !strings.HasPrefix(got, step.stat) {
				t.Errorf("after hafeed %s: show stat status = %q, want %s...", step.cmd, got, step.stat)
			}
		}
	})

}

func TestDrainSurvivesKill9(t *testing.T) {
	t.Parallel()
	forEachHAProxy(t, func(t *testing.T, hb haproxytest.Build) {
		_, h, hp := setupOn(t, hb)
		h.mustCLI("drain")
		hp.waitFor("ws1", propagationLimit, "forced drain", serverState.drained)

		h.kill9()
		// With the agent gone, HAProxy keeps the last answer (fail-static).
		hp.holds("ws1", 5*agentInter, "drain while hafeed is down", serverState.drained)

		h.start()
		if got := h.agentReply(); !strings.HasPrefix(got, "drain") {
			t.Errorf("first agent reply after restart = %q, want drain", got)
		}
		if st := h.status(); st.Admin != "drain" {
			t.Errorf("status after restart: admin = %s, want drain", st.Admin)
		}
		hp.holds("ws1", 5*agentInter, "drain after hafeed restarted", serverState.drained)

		since := h.mustCLI("ready")
		took := hp.waitSince(since, "ws1", propagationLimit, "ready", serverState.readyAdmin)
		t.Logf("PROPAGATION ready after kill -9 and restart: %v", took.Round(time.Millisecond))
	})

}

func TestOperatorDrainIsNotUndone(t *testing.T) {
	t.Parallel()
	forEachHAProxy(t, func(t *testing.T, hb haproxytest.Build) {
		a, h, hp := setupOn(t, hb)
		// Leave a drain of hafeed's own, so that "ready" is announced and ends.
		h.mustCLI("drain")
		hp.waitFor("ws1", propagationLimit, "forced drain", serverState.drained)
		h.mustCLI("ready")
		hp.waitFor("ws1", propagationLimit, "ready", serverState.readyAdmin)
		waitAnnounced(t, h)

		hp.mustRuntime("set server ws/ws1 state drain")
		hp.holds("ws1", 10*agentInter, "the operator's drain", serverState.drained)
		// The agent still steers the weight of the drained server.
		a.connect(20)
		h.setUtil(0.25)
		hp.waitFor("ws1", 5*time.Second, "uweight 80 under the operator's drain", func(s serverState) bool { return s.drained() && s.UWeight == 80 })

		hp.mustRuntime("set server ws/ws1 state ready")
		hp.holds("ws1", 5*agentInter, "the operator's ready", serverState.readyAdmin)
	})

}

// TestHafeedDrainIsSticky documents the other half of sharing: hafeed keeps
// answering "drain", so an operator's runtime "ready" does not outlive
// hafeed's own drain.
func TestHafeedDrainIsSticky(t *testing.T) {
	t.Parallel()
	forEachHAProxy(t, func(t *testing.T, hb haproxytest.Build) {
		_, h, hp := setupOn(t, hb)
		h.mustCLI("drain")
		hp.waitFor("ws1", propagationLimit, "forced drain", serverState.drained)
		since := time.Now()
		hp.mustRuntime("set server ws/ws1 state ready")
		took := hp.waitSince(since, "ws1", propagationLimit, "hafeed's drain again", serverState.drained)
		t.Logf("PROPAGATION hafeed re-drains after an operator's runtime ready: %v", took.Round(time.Millisecond))
	})

}

// TestTwoHAProxiesHearReady runs two HAProxy instances polling one agent: a
// drain and a ready reach both, and afterwards an operator drain on one of
// them stays.
func TestTwoHAProxiesHearReady(t *testing.T) {
	t.Parallel()
	a := startApp(t)
	h := startHafeed(t, hafeedOptions{config: loadConfig, appPort: a.port()})
	srv := haproxyServer{Name: "ws1", AppPort: a.port(), AgentPort: h.agentPort()}
	lb1, lb2 := startHAProxy(t, srv), startHAProxy(t, srv)
	for _, lb := range []*haproxyProc{lb1, lb2} {
		lb.waitPolled("ws1")
	}
	since := h.mustCLI("drain")
	for i, lb := range []*haproxyProc{lb1, lb2} {
		took := lb.waitSince(since, "ws1", propagationLimit, "forced drain", serverState.drained)
		t.Logf("PROPAGATION drain to haproxy #%d: %v", i+1, took.Round(time.Millisecond))
	}
	since = h.mustCLI("ready")
	for i, lb := range []*haproxyProc{lb1, lb2} {
		took := lb.waitSince(since, "ws1", propagationLimit, "ready", serverState.readyAdmin)
		t.Logf("PROPAGATION ready to haproxy #%d: %v", i+1, took.Round(time.Millisecond))
	}
	took := waitAnnounced(t, h)
	t.Logf("ready announcement to 2 HAProxies ended after %v", took.Round(time.Millisecond))

	lb2.mustRuntime("set server ws/ws1 state drain")
	lb2.holds("ws1", 10*agentInter, "the operator's drain on haproxy #2", serverState.drained)
	lb1.holds("ws1", agentInter, "ready on haproxy #1", serverState.readyAdmin)
}

// waitAnnounced waits until the agent stops sending "ready".
func waitAnnounced(t *testing.T, h *hafeed) time.Duration {
	t.Helper()
	return testutil.Until(t, 10*time.Second, "the agent to stop announcing ready", func() bool { return !h.status().AnnouncingReady })
}

// TestAgentPortAbuse holds many idle connections, writes garbage and
// trickles bytes into the agent port while the operator drains and
// readies: HAProxy must keep getting correct replies. The abuse comes from
// another address (127.0.0.2), as it would from another host: clients
// polling from an HAProxy's own address count as that HAProxy.
func TestAgentPortAbuse(t *testing.T) {
	t.Parallel()
	_, h, hp := setup(t)

	var wg sync.WaitGroup
	stop := make(chan struct{})
	defer func() {
		close(stop)
		wg.Wait()
	}()
	var mu sync.Mutex
	var held []net.Conn
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	hold := func(c net.Conn) {
		mu.Lock()
		held = append(held, c)
		mu.Unlock()
	}
	abuser := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	// 2000 idle connections that never send or close.
	for range 2000 {
		c, err := abuser.Dial("tcp", h.agentAddr)
		if err != nil {
			t.Fatalf("opening idle connection: %v", err)
		}
		hold(c)
	}
	// Garbage writers and slow tricklers, reconnecting in loops.
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := abuser.Dial("tcp", h.agentAddr)
				if err != nil {
					continue
				}
				if i%2 == 0 {
					c.Write([]byte(strings.Repeat("\x00garbage\xff\r\n", 500)))
				} else {
					for range 5 {
						c.Write([]byte("s"))
						time.Sleep(20 * time.Millisecond)
					}
				}
				c.Close()
			}
		}()
	}

	for _, step := range []struct {
		cmd string
		ok  func(serverState) bool
	}{{"drain", serverState.drained}, {"ready", serverState.readyAdmin}, {"maint", serverState.maint}, {"ready", serverState.readyAdmin}} {
		since := h.mustCLI(step.cmd)
		took := hp.waitSince(since, "ws1", propagationLimit, step.cmd, step.ok)
		t.Logf("PROPAGATION under abuse (2000 idle + 8 garbage/slow loops) hafeed %s: %v", step.cmd, took.Round(time.Millisecond))
	}
	if st := hp.stat("ws1"); !strings.HasPrefix(st["agent_status"], "L7OK") {
		t.Errorf("agent_status = %q, want L7OK", st["agent_status"])
	}
}
