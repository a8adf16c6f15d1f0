package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/internal/testutil"
)

// soakFor is how long the attacks of TestSoakUnderAttack run.
const soakFor = 25 * time.Second

// soakConfig is the agents' configuration in the soak: the application
// reports 1.8 times its target (0.9 of 0.5), so that the overload guard sends maxconn,
// which the HAProxies polling share.
const soakConfig = `
sources:
  cpu: none
  memory: none
  app:
    file: {{.UtilFile}}
policy:
  targets:
    app: 0.5
  smoothing: 0s
  blackout: 0s
  min_connections: 1
metrics:
  listen: "{{.Metrics}}"
{{.HAProxy}}agent_check:
  allow: [{{.Allow}}]
`

// TestSoakUnderAttack runs, for soakFor against two real agents behind a
// real HAProxy, the attacks of issue 11 at fixed rates, and then checks
// what must hold:
//
//   - agent-check port: idle connections, slowloris, 100 KB of garbage, a
//     reset storm, and 1,000 distinct source addresses polling;
//   - control socket: bursts of 40 idle clients, and 8 clients changing the
//     admin state concurrently with 2 s deadlines while a second runtime
//     endpoint never answers, floods or answers with escape sequences;
//   - /metrics: 50 idle keep-alives and a stream of scrapes;
//   - SIGHUP every 2 s; and agent B under a limit of 256 descriptors with
//     300 connections held against it.
//
// Afterwards: HAProxy's agent checks kept answering, every admin answer
// agreed with the change and a failed call never took effect, descriptors
// and goroutines return to their baseline, the peer table is bounded and
// the pollers did not cut maxconn, no escape sequence reaches the terminal,
// both agents live, and SIGTERM stops them at once.
func TestSoakUnderAttack(t *testing.T) {
	// Not parallel: it measures descriptors, goroutines and timing.
	appA, appB := startApp(t), startApp(t)
	appA.connect(30)
	appB.connect(30)
	hp := newHAProxy(t)
	hostile := startHostileRuntime(t)
	runtimes := fmt.Sprintf("haproxy:\n  - runtime: unix://%s\n    backend: ws\n    server: a\n  - runtime: unix://%s\n    backend: ws\n    server: a\n", hp.sock, hostile)
	a := startHafeed(t, hafeedOptions{appPort: appA.port(), config: soakConfig,
		vars: map[string]string{"Allow": "127.0.0.1/32", "Metrics": testutil.FreeAddr(t), "HAProxy": runtimes}})
	// A runs the build without the race detector, whose shadow memory
	// would hide what the flood costs; B runs the race build.
	a.stop()
	a.relaunchWith(cliBin)
	if err := awaitStarted(a.exited, func() bool { _, err := a.call(control.CommandStatus); return err == nil }); err != nil {
		t.Fatalf("agent A: %v\n%s", err, a.logs())
	}
	// B keeps its lingering agent-check connections (max_conns) well
	// under the descriptor limit it gets below.
	b := startHafeed(t, hafeedOptions{appPort: appB.port(), config: soakConfig + "  max_conns: 64\n",
		vars: map[string]string{"Allow": "", "Metrics": testutil.FreeAddr(t), "HAProxy": ""}})
	a.setUtil(0.9)
	b.setUtil(0.9)
	hp.start(500*time.Millisecond,
		haproxyServer{Name: "a", AppPort: appA.port(), AgentPort: a.agentPort()},
		haproxyServer{Name: "b", AppPort: appB.port(), AgentPort: b.agentPort()})
	hp.waitPolled("a")
	hp.waitPolled("b")
	if out, err := exec.Command("prlimit", "--pid", strconv.Itoa(b.cmd.Process.Pid), "--nofile=256:256").CombinedOutput(); err != nil {
		t.Fatalf("prlimit: %v: %s", err, out)
	}
	// Both agents send maxconn, shared by the one HAProxy polling them.
	testutil.Poll(t, 10*time.Second, "both agents to send maxconn", func() error {
		for _, h := range []*hafeed{a, b} {
			if s := h.status().Sample; s == nil || !s.SendMaxconn {
				return fmt.Errorf("agent on %s sends no maxconn", h.agentAddr)
			}
		}
		return nil
	})
	maxconn := a.status().Sample.Maxconn
	base := map[*hafeed]usage{a: a.mustUsage(), b: b.mustUsage()}
	t.Logf("baseline: A %+v, B %+v, maxconn %d", base[a], base[b], maxconn)

	ctx, cancel := context.WithTimeout(context.Background(), soakFor)
	defer cancel()
	var wg sync.WaitGroup
	attacks := &soakCounts{}
	wg.Go(func() { attacks.idleAgentCheck(ctx, a.agentAddr, 500) })
	wg.Go(func() { attacks.slowloris(ctx, a.agentAddr, 100) })
	wg.Go(func() { attacks.garbage(ctx, a.agentAddr) })
	wg.Go(func() { attacks.resets(ctx, a.agentAddr) })
	for _, h := range []*hafeed{a, b} {
		wg.Go(func() { attacks.distinctPollers(ctx, h.agentAddr, 1000) })
		wg.Go(func() { attacks.idleMetrics(t, h.vars["Metrics"], 50) })
		wg.Go(func() { attacks.scrapes(ctx, h.vars["Metrics"]) })
		wg.Go(func() { hangUpEvery(ctx, h, 2*time.Second) })
	}
	wg.Go(func() { attacks.idleControl(ctx, a.ctlSock, 40) })
	wg.Go(func() { attacks.holdAgainstLimit(ctx, b.agentAddr, b.ctlSock, 300) })
	// Room for every call the callers can make (each pauses at least
	// adminCallPause), so none blocks before the results are read.
	const numCallers = 8
	calls := make(chan adminCall, numCallers*(int(soakFor/adminCallPause)+1))
	var callers sync.WaitGroup
	for i := range numCallers {
		callers.Go(func() { adminCalls(ctx, a.ctlSock, i, calls) })
	}
	checks := map[string]*checkTally{"a": {}, "b": {}}
	wg.Go(func() { sampleAgentChecks(ctx, hp, checks) })
	statusOut := make(chan string, 64)
	wg.Go(func() { cliStatusEvery(ctx, a, statusOut) })
	callers.Wait()
	close(calls)
	wg.Wait()
	close(statusOut)

	// The agent checks kept answering.
	for name, c := range checks {
		t.Logf("agent checks of %s: %d of %d samples L7OK (others: %v)", name, c.ok, c.total, c.other)
	}
	if c := checks["a"]; c.total < 20 || float64(c.ok) < 0.99*float64(c.total) {
		t.Errorf("agent checks of a: %d of %d L7OK, want 99%%", c.ok, c.total)
	}
	if c := checks["b"]; c.total < 20 || float64(c.ok) < 0.99*float64(c.total) {
		t.Errorf("agent checks of b: %d of %d L7OK, want 99%%", c.ok, c.total)
	}
	t.Logf("attacks: %s", attacks)

	// Every admin answer agreed with its change; the last one that
	// succeeded is the state, in the file and in HAProxy.
	var last *control.Status
	okCalls, failed := 0, 0
	for c := range calls {
		if c.err != nil {
			failed++
			continue
		}
		okCalls++
		if c.status.Admin != c.command || !strings.Contains(c.status.Reply, replyWord(c.command)) {
			t.Errorf("%s answered admin %s, reply %q: the answer contradicts the change", c.command, c.status.Admin, c.status.Reply)
		}
		if last == nil || c.status.Since.After(last.Since) {
			last = c.status
		}
	}
	t.Logf("admin calls: %d succeeded, %d failed", okCalls, failed)
	if last == nil {
		t.Fatal("no admin call succeeded under attack")
	}
	time.Sleep(3 * time.Second) // a failed call that still took effect would show by now
	st := a.status()
	if st.Admin != last.Admin || !st.Since.Equal(last.Since) {
		t.Errorf("after the calls: admin %s since %v; want the last successful call's %s since %v: a failed call took effect",
			st.Admin, st.Since, last.Admin, last.Since)
	}
	want := map[string]func(serverState) bool{"drain": serverState.drained, "ready": serverState.readyAdmin}[last.Admin]
	hp.waitFor("a", 5*time.Second, "the last successful call's "+last.Admin, want)

	// No escape sequence from the hostile endpoint reached the terminal.
	n := 0
	for out := range statusOut {
		n++
		if strings.ContainsAny(out, "\x1b\x07") {
			t.Errorf("hafeed status printed a control character: %q", out)
			break
		}
	}
	if out, code := a.cli("drain"); code != 0 || strings.ContainsAny(out, "\x1b\x07") || !strings.Contains(out, "admin state drain") {
		t.Errorf("hafeed drain after the attacks = exit %d, %q; want 0, drain, no control characters", code, out)
	}
	t.Logf("%d hafeed status outputs checked", n)

	// The peer table stays bounded; B's one-shot pollers did not cut the
	// maxconn it shares with the one real HAProxy, and A's were refused.
	if peers := a.status().Peers; len(peers) != 1 || peers[0].Addr != "127.0.0.1" {
		t.Errorf("agent A (allow 127.0.0.1/32) lists peers %v, want only 127.0.0.1", peerAddrs(peers))
	}
	stB := b.status()
	if len(stB.Peers) > 1024 {
		t.Errorf("agent B lists %d peers, want at most 1024", len(stB.Peers))
	}
	if s := stB.Sample; s == nil || s.Maxconn != maxconn {
		t.Errorf("agent B's maxconn after 1,000 addresses polled once = %v, want %d as before", s, maxconn)
	}

	// Descriptors and goroutines return to their baseline, the idle
	// keep-alives to /metrics still open on the clients' side included;
	// memory stays near it.
	for h, u := range base {
		testutil.Poll(t, 25*time.Second, "agent on "+h.agentAddr+" back to its baseline", func() error {
			now, err := h.usage()
			if err != nil {
				return err
			}
			if now.fds > u.fds+5 || now.goroutines > u.goroutines+5 {
				return fmt.Errorf("now %+v, baseline %+v", now, u)
			}
			if h == a && now.rssMiB > u.rssMiB+20 { // B's race build keeps shadow memory
				return fmt.Errorf("RSS %d MiB, baseline %d MiB", now.rssMiB, u.rssMiB)
			}
			return nil
		})
		t.Logf("agent on %s after: %+v (baseline %+v)", h.agentAddr, h.mustUsage(), u)
	}

	// Both agents live, and SIGTERM stops them at once even with idle
	// control clients connected.
	for _, h := range []*hafeed{a, b} {
		var idle []net.Conn
		for range 40 {
			c, err := net.Dial("unix", h.ctlSock)
			if err != nil {
				t.Fatalf("agent on %s: %v (alive?)\n%s", h.agentAddr, err, h.logs())
			}
			idle = append(idle, c)
		}
		start := time.Now()
		h.cmd.Process.Signal(syscall.SIGTERM)
		testutil.Recv(t, h.exited, 10*time.Second, "the agent to exit after SIGTERM")
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("agent on %s took %v to exit after SIGTERM with 40 idle control clients", h.agentAddr, took)
		}
		if h.exitErr != nil {
			t.Errorf("agent on %s exited with %v\n%s", h.agentAddr, h.exitErr, h.logs())
		}
		for _, c := range idle {
			c.Close()
		}
		h.cmd = nil
		h.log.Close()
	}
}

// replyWord is what the agent-check reply says for an admin command.
func replyWord(command string) string {
	if command == "ready" {
		return "up"
	}
	return command
}

func peerAddrs(peers []control.PeerStatus) []string {
	var out []string
	for i, p := range peers {
		if i == 5 {
			out = append(out, fmt.Sprintf("… %d more", len(peers)-5))
			break
		}
		out = append(out, p.Addr)
	}
	return out
}

// usage is what an agent holds: open descriptors, goroutines and memory.
type usage struct {
	fds, goroutines int
	rssMiB          int
}

// usage measures it. A figure it cannot read is an error, never a zero
// that would pass for "back to the baseline".
func (h *hafeed) usage() (usage, error) {
	pid := h.cmd.Process.Pid
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return usage{}, err
	}
	u := usage{fds: len(fds), rssMiB: -1, goroutines: -1}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return usage{}, err
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				return usage{}, fmt.Errorf("/proc/%d/status: VmRSS: %w", pid, err)
			}
			u.rssMiB = kb / 1024
		}
	}
	if u.rssMiB < 0 {
		return usage{}, fmt.Errorf("/proc/%d/status has no VmRSS line", pid)
	}
	url := "http://" + h.vars["Metrics"] + "/metrics"
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Get(url)
	if err != nil {
		return usage{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return usage{}, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			if u.goroutines, err = strconv.Atoi(v); err != nil {
				return usage{}, fmt.Errorf("GET %s: go_goroutines: %w", url, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return usage{}, fmt.Errorf("GET %s: %w", url, err)
	}
	if u.goroutines < 0 {
		return usage{}, fmt.Errorf("GET %s: no go_goroutines", url)
	}
	return u, nil
}

// mustUsage is usage for a figure the test cannot go on without.
func (h *hafeed) mustUsage() usage {
	h.t.Helper()
	u, err := h.usage()
	if err != nil {
		h.t.Fatalf("measuring the agent on %s: %v", h.agentAddr, err)
	}
	return u
}

// startHostileRuntime is a runtime API socket that answers each command in
// turn with escape sequences, not at all, or an endless flood.
func startHostileRuntime(t *testing.T) string {
	t.Helper()
	path := filepath.Join(testutil.ShortTempDir(t), "hostile.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				context.AfterFunc(stopContext(stop), func() { c.Close() })
				if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
					return
				}
				switch n % 3 {
				case 0:
					fmt.Fprint(c, "\x1b]0;owned\x07\x1b[2J\x1b[31mUnknown command\r\n\n")
				case 1:
					<-stop // never answers
				case 2:
					line := []byte(strings.Repeat("A", 1023) + "\n")
					for {
						if _, err := c.Write(line); err != nil {
							return
						}
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		close(stop)
		ln.Close()
		wg.Wait()
	})
	return path
}

// stopContext is a context that ends when stop is closed.
func stopContext(stop <-chan struct{}) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-stop
		cancel()
	}()
	return ctx
}

// soakCounts counts what the attackers did.
type soakCounts struct {
	idle, slow, junk, resetN, polls, metricsIdle, scrapeN, controlIdle, held atomic.Int64
}

func (s *soakCounts) String() string {
	return fmt.Sprintf("agent-check: %d idle, %d slowloris, %d garbage, %d resets, %d distinct-source polls; metrics: %d idle keep-alives, %d scrapes; control: %d idle; B: %d held",
		s.idle.Load(), s.slow.Load(), s.junk.Load(), s.resetN.Load(), s.polls.Load(), s.metricsIdle.Load(), s.scrapeN.Load(), s.controlIdle.Load(), s.held.Load())
}

// hold keeps conns open until ctx ends, then closes them.
func hold(ctx context.Context, conns []net.Conn) {
	<-ctx.Done()
	for _, c := range conns {
		c.Close()
	}
}

func (s *soakCounts) idleAgentCheck(ctx context.Context, addr string, n int) {
	var conns []net.Conn
	for range n {
		if c, err := net.Dial("tcp", addr); err == nil {
			conns = append(conns, c)
			s.idle.Add(1)
		}
	}
	hold(ctx, conns)
}

func (s *soakCounts) slowloris(ctx context.Context, addr string, n int) {
	var conns []net.Conn
	for range n {
		if c, err := net.Dial("tcp", addr); err == nil {
			conns = append(conns, c)
			s.slow.Add(1)
		}
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, c := range conns {
			c.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
			c.Write([]byte("x"))
		}
	}
}

func (s *soakCounts) garbage(ctx context.Context, addr string) {
	junk := make([]byte, 100*1024)
	for i := range junk {
		junk[i] = byte(rand.N(256))
	}
	every(ctx, 100*time.Millisecond, func() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		c.Write(junk)
		s.junk.Add(1)
	})
}

func (s *soakCounts) resets(ctx context.Context, addr string) {
	every(ctx, 5*time.Millisecond, func() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
		s.resetN.Add(1)
	})
}

// distinctPollers polls once from each of n source addresses in
// 127.2.0.0/16, spread over the soak.
func (s *soakCounts) distinctPollers(ctx context.Context, addr string, n int) {
	i := 0
	every(ctx, soakFor/time.Duration(n+50), func() {
		if i >= n {
			return
		}
		src := &net.TCPAddr{IP: net.IPv4(127, 2, byte(i>>8), byte(1+i%250))}
		i++
		d := net.Dialer{LocalAddr: src, Timeout: time.Second}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		io.Copy(io.Discard, c)
		s.polls.Add(1)
	})
}

// idleMetrics leaves n keep-alive connections to /metrics idle after one
// request each, open until the test ends: the server must close them.
func (s *soakCounts) idleMetrics(t *testing.T, addr string, n int) {
	var conns []net.Conn
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			continue
		}
		conns = append(conns, c)
		// One request each, if the server takes the connection in time;
		// then the connection idles as a keep-alive.
		c.SetDeadline(time.Now().Add(200 * time.Millisecond))
		fmt.Fprint(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		s.metricsIdle.Add(1)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
}

func (s *soakCounts) scrapes(ctx context.Context, addr string) {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	every(ctx, 50*time.Millisecond, func() {
		resp, err := client.Get("http://" + addr + "/metrics")
		if err != nil {
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		s.scrapeN.Add(1)
	})
}

// idleControl connects n clients that send nothing, every 5 s.
func (s *soakCounts) idleControl(ctx context.Context, socket string, n int) {
	every(ctx, 5*time.Second, func() {
		var conns []net.Conn
		for range n {
			if c, err := net.Dial("unix", socket); err == nil {
				conns = append(conns, c)
				s.controlIdle.Add(1)
			}
		}
		hctx, cancel := context.WithTimeout(ctx, 2500*time.Millisecond)
		defer cancel()
		hold(hctx, conns)
	})
}

// holdAgainstLimit holds n connections to addr for 3 s out of every 6,
// and meanwhile connects to the control socket, whose accept then runs
// out of descriptors too.
func (s *soakCounts) holdAgainstLimit(ctx context.Context, addr, socket string, n int) {
	every(ctx, 6*time.Second, func() {
		var conns []net.Conn
		for range n {
			if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
				conns = append(conns, c)
				s.held.Add(1)
			}
		}
		for range 5 {
			if c, err := net.Dial("unix", socket); err == nil {
				conns = append(conns, c)
			}
		}
		hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		hold(hctx, conns)
	})
}

// every runs f every period until ctx ends.
func every(ctx context.Context, period time.Duration, f func()) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		f()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func hangUpEvery(ctx context.Context, h *hafeed, period time.Duration) {
	every(ctx, period, func() { h.cmd.Process.Signal(syscall.SIGHUP) })
}

// adminCall is one drain or ready on the control socket and its answer.
type adminCall struct {
	command string
	status  *control.Status
	err     error
}

// adminCalls changes the admin state, drain and ready in turn, with 2 s
// deadlines, until ctx ends.
// adminCallPause is the shortest pause between two of a caller's calls.
const adminCallPause = 100 * time.Millisecond

func adminCalls(ctx context.Context, socket string, i int, out chan<- adminCall) {
	for n := i; ctx.Err() == nil; n++ {
		command := control.CommandDrain
		if n%2 == 1 {
			command = control.CommandReady
		}
		callCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := control.Call(callCtx, socket, control.Request{Command: command})
		cancel()
		c := adminCall{command: command, err: err}
		if err == nil {
			c.status = resp.Status
		}
		out <- c
		select {
		case <-ctx.Done():
		case <-time.After(adminCallPause + time.Duration(rand.N(400))*time.Millisecond):
		}
	}
}

// checkTally counts HAProxy's agent-check results for one server.
type checkTally struct {
	total, ok int
	other     map[string]int
}

// sampleAgentChecks reads every server's agent_status from show stat every
// 250 ms until ctx ends.
func sampleAgentChecks(ctx context.Context, hp *haproxyProc, tallies map[string]*checkTally) {
	every(ctx, 250*time.Millisecond, func() {
		out, err := hp.runtime("show stat")
		if err != nil {
			return
		}
		rows, err := splitTable(out, ",", 0)
		if err != nil {
			return
		}
		for _, r := range rows {
			if _, whole := r["agent_status"]; !whole || r["pxname"] != "ws" {
				continue
			}
			c := tallies[r["svname"]]
			if c == nil {
				continue
			}
			c.total++
			// L7OK: "up"; CHECKED: a reply with no health word (drain,
			// a weight); "* " marks a check in progress.
			if s := strings.TrimPrefix(r["agent_status"], "* "); s == "L7OK" || s == "CHECKED" {
				c.ok++
			} else {
				if c.other == nil {
					c.other = map[string]int{}
				}
				c.other[s]++
			}
		}
	})
}

// cliStatusEvery runs `hafeed status` against h every second.
func cliStatusEvery(ctx context.Context, h *hafeed, out chan<- string) {
	every(ctx, time.Second, func() {
		c := exec.Command(cliBin, "status", "--control-socket", h.ctlSock)
		b, _ := c.CombinedOutput()
		select {
		case out <- string(b):
		default:
		}
	})
}
