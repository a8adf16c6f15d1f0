package e2e

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hafeed/hafeed/haproxy"
	"github.com/hafeed/hafeed/internal/haproxytest"
	"github.com/hafeed/hafeed/internal/testutil"
)

// fakeAgent answers agent-checks with a line the test sets, and counts the
// polls that got the current line.
type fakeAgent struct {
	ln    net.Listener
	mu    sync.Mutex
	line  string
	polls int
	wg    sync.WaitGroup
}

func startFakeAgent(t *testing.T, line string) *fakeAgent {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &fakeAgent{ln: ln, line: line}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.mu.Lock()
			line := a.line
			a.polls++
			a.mu.Unlock()
			c.Write([]byte(line))
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		a.wg.Wait()
	})
	return a
}

func (a *fakeAgent) port() int { return a.ln.Addr().(*net.TCPAddr).Port }

// set changes the reply and waits until HAProxy has fetched it twice, so
// that it has acted on it at least once.
func (a *fakeAgent) set(t *testing.T, line string) {
	t.Helper()
	a.mu.Lock()
	a.line, a.polls = line, 0
	a.mu.Unlock()
	testutil.Until(t, 10*agentInter, "HAProxy polling the agent twice for "+strings.TrimSpace(line), func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.polls >= 2
	})
}

// TestReplyWordsByVersion sends the lines hafeed renders (haproxy.Reply)
// to every HAProxy build and checks how each one reads them, beside the
// words whose meaning depends on the version: "weight:N" exists from 3.1
// on, which is why hafeed sends "N%" (the same on every version).
func TestReplyWordsByVersion(t *testing.T) {
	t.Parallel()
	forEachHAProxy(t, func(t *testing.T, hb haproxytest.Build) {
		a := startApp(t)
		agent := startFakeAgent(t, "up 100%\n")
		hp := startHAProxyOf(t, hb, haproxyServer{Name: "ws1", AppPort: a.port(), AgentPort: agent.port()})
		hp.waitPolled("ws1")
		for _, step := range []struct {
			line   string
			admin  int
			weight int
			slim   string
			status string
		}{
			{line: haproxy.Reply{WeightPercent: 150}.Line(), weight: 150, status: "UP"},
			{line: haproxy.Reply{Admin: haproxy.AdminDrain, WeightPercent: 40}.Line(), admin: adminForcedDrain, weight: 40, status: "DRAIN"},
			{line: haproxy.Reply{Admin: haproxy.AdminDrain}.Line(), admin: adminForcedDrain, weight: 40, status: "DRAIN"},
			{line: haproxy.Reply{AnnounceReady: true, WeightPercent: 80, Maxconn: 25}.Line(), weight: 80, slim: "25", status: "UP"},
			{line: haproxy.Reply{WeightPercent: 300, SendMaxconn: true}.Line(), weight: 256, status: "UP"},
			{line: haproxy.Reply{Admin: haproxy.AdminMaint}.Line(), admin: adminForcedMaint, weight: 256, status: "MAINT"},
			{line: haproxy.Reply{AnnounceReady: true, WeightPercent: 100}.Line(), weight: 100, status: "UP"},
			// Absolute weights: a word of 3.1 and later, unknown and ignored before.
			{line: "up weight:30\n", weight: map[bool]int{true: 30, false: 100}[hb.AtLeast(3, 1)], status: "UP"},
		} {
			agent.set(t, step.line)
			want := func(s serverState) bool { return s.AdminState == step.admin && s.UWeight == step.weight }
			hp.waitFor("ws1", 5*time.Second, fmt.Sprintf("admin %#x weight %d after %q", step.admin, step.weight, step.line), want)
			st := hp.stat("ws1")
			if !strings.HasPrefix(st["status"], step.status) || st["slim"] != step.slim {
				t.Errorf("%s after %q: show stat status %q slim %q, want %s... and %q", hb.Name(), step.line, st["status"], st["slim"], step.status, step.slim)
			}
			t.Logf("%s reads %q as: status %q weight %s slim %q last_agt %q", hb.Name(), strings.TrimSpace(step.line), st["status"], st["weight"], st["slim"], st["last_agt"])
		}
	})
}

// TestAgentOnlyServerNeedsUp checks, on every HAProxy build, a server whose
// only check is the agent: after a "down", a reply without "up" leaves it
// DOWN (agent), and hafeed's replies, drained or ready, bring it back
// because they carry "up". HAProxy 3.3 and later start such a server at
// agent health 0, as if after a "down", so there it matters from the start.
func TestAgentOnlyServerNeedsUp(t *testing.T) {
	t.Parallel()
	forEachHAProxy(t, func(t *testing.T, hb haproxytest.Build) {
		a := startApp(t)
		agent := startFakeAgent(t, "up 100%\n")
		hp := startHAProxyOf(t, hb, haproxyServer{Name: "ws1", AppPort: a.port(), AgentPort: agent.port(), NoCheck: true})
		running := func(s serverState) bool { return s.OpState == 2 }
		for _, step := range []struct {
			line    string
			running bool
			admin   int
		}{
			{line: "down\n"},
			{line: "100%\n"}, // no "up": stays down
			{line: haproxy.Reply{Admin: haproxy.AdminDrain, WeightPercent: 100}.Line(), running: true, admin: adminForcedDrain},
			{line: "down\n", admin: adminForcedDrain},
			{line: haproxy.Reply{AnnounceReady: true, WeightPercent: 100}.Line(), running: true},
		} {
			agent.set(t, step.line)
			s := hp.serverState("ws1")
			st := hp.stat("ws1")
			t.Logf("%s agent-only server after %q: status %q, %v", hb.Name(), strings.TrimSpace(step.line), st["status"], s)
			if running(s) != step.running || s.AdminState != step.admin {
				t.Errorf("%s after %q: %v (status %q), want running %v and admin %#x", hb.Name(), step.line, s, st["status"], step.running, step.admin)
			}
		}
	})
}
