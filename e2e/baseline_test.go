package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
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

	"github.com/hafeed/hafeed/internal/testutil"
)

// nodeApp is a Node.js socket server whose CPU is a baseline that its
// sockets do not cause: a timer busy for baselineMs of every 100 ms, as a
// runtime's timers and housekeeping are. Its sockets echo what they get.
const nodeApp = `
const net = require('net');
const baselineMs = Number(process.env.BASELINE_MS || 0);
const srv = net.createServer(s => { s.on('data', d => s.write(d)); s.on('error', () => {}); });
srv.listen(0, '127.0.0.1', () => { console.log(srv.address().port); });
setInterval(() => { const end = Date.now() + baselineMs; while (Date.now() < end) {} }, 100);
process.on('SIGTERM', () => process.exit(0));
`

// startNodeApp runs nodeApp and returns its pid and port.
func startNodeApp(t *testing.T, baselineMs int) (pid, port int) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not on PATH: this test runs a Node.js application (apt-get install -y nodejs)")
	}
	script := filepath.Join(testutil.ShortTempDir(t), "app.js")
	if err := os.WriteFile(script, []byte(nodeApp), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, script)
	cmd.Env = append(os.Environ(), "BASELINE_MS="+strconv.Itoa(baselineMs))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	out.(*os.File).SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("node app did not print its port within 10s: %v", err)
	}
	return cmd.Process.Pid, atoi(t, strings.TrimSpace(line))
}

// idleClients keeps n mostly idle sockets open through addr, each sending a
// byte every 2 s, and reconnects whenever the server side closes one, as a
// browser tab's WebSocket client does.
type idleClients struct {
	connected, reconnects atomic.Int64
	// eofs and resets count how connections ended: a FIN from HAProxy
	// (a read of EOF) or a reset (ECONNRESET).
	eofs, resets atomic.Int64
	// maxDown is the longest a client that had been connected went without
	// a connection, in nanoseconds, counting only gaps that have ended.
	maxDown atomic.Int64
}

// longestDown is the longest gap a client had between losing its
// connection and holding a new one.
func (c *idleClients) longestDown() time.Duration { return time.Duration(c.maxDown.Load()) }

func runIdleClients(ctx context.Context, wg *sync.WaitGroup, addr string, n int) *idleClients {
	c := &idleClients{}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 9))
			// Spread the first connections over a second.
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(rng.IntN(1000)) * time.Millisecond):
			}
			var lost time.Time // when this client last lost its connection
			for first := true; ctx.Err() == nil; first = false {
				if !first {
					c.reconnects.Add(1)
				}
				if c.session(ctx, addr, lost) {
					lost = time.Now()
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Duration(20+rng.IntN(80)) * time.Millisecond):
				}
			}
		}()
	}
	return c
}

// session holds one connection until it fails or ctx ends, and says
// whether it connected; lost is when the client lost its last connection
// (zero: it never had one), so that the gap is recorded once it ends.
func (c *idleClients) session(ctx context.Context, addr string, lost time.Time) bool {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if !lost.IsZero() {
		down := int64(time.Since(lost))
		for cur := c.maxDown.Load(); down > cur && !c.maxDown.CompareAndSwap(cur, down); cur = c.maxDown.Load() {
		}
	}
	c.connected.Add(1)
	defer c.connected.Add(-1)
	buf := make([]byte, 1)
	for {
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write([]byte{'x'}); err != nil {
			return true
		}
		if _, err := conn.Read(buf); err != nil {
			switch {
			case errors.Is(err, io.EOF):
				c.eofs.Add(1)
			case errors.Is(err, syscall.ECONNRESET):
				c.resets.Add(1)
			}
			return true
		}
		select {
		case <-ctx.Done():
			return true
		case <-time.After(2 * time.Second):
		}
	}
}

// baselineFarmConfig is what an operator of a WebSocket farm writes:
// the application's CPU, a runtime endpoint, rebalancing on, every other
// key at its default.
const baselineFarmConfig = `
sources:
  cpu: process
  pid: {{.Pid}}
haproxy:
  - runtime: unix://{{.Sock}}
    backend: ws
    server: {{.Server}}
rebalance:
  enabled: true
`

// TestBaselineFarm is the farm that made the old capacity estimate fail:
// four Node.js servers whose CPU is a baseline of 8% of a core that their
// idle sockets do not change, three holding 100 sockets each, a fourth
// added (maint, then hafeed ready) with only rebalance.enabled set. The
// equal hosts get weights within 1.5x of each other, the added host holds
// 90% of its fair share within 30 s of ready, and it sheds nothing itself.
func TestBaselineFarm(t *testing.T) {
	const hosts, clients = 4, 300
	hp := newHAProxy(t)
	agents, servers := startNodeFarm(t, hp, "ws", hosts, hosts-1)
	pop := connectIdleClients(t, hp, clients)
	scur := func(name string) int { return atoi(t, hp.stat(name)["scur"]) }
	weight := func(name string) int { return atoi(t, hp.stat(name)["weight"]) }
	counts := func() string {
		var parts []string
		for _, s := range servers {
			st := hp.stat(s.Name)
			parts = append(parts, fmt.Sprintf("%s=%s (weight %s)", s.Name, st["scur"], st["weight"]))
		}
		return strings.Join(parts, " ")
	}
	// The old hosts' weights, once the blackout is over and the estimate
	// has settled: within 1.5x, whatever the counts.
	testutil.Poll(t, 30*time.Second, "the three hosts reporting settled weights", func() error {
		var ws []int
		for _, s := range servers[:hosts-1] {
			if st := agents[0].status(); st.Sample == nil {
				return fmt.Errorf("no sample yet")
			}
			ws = append(ws, weight(s.Name))
		}
		if spread(ws) > 1.5 {
			return fmt.Errorf("weights %v spread %.2fx: %s", ws, spread(ws), counts())
		}
		return nil
	})
	before := counts()

	start := agents[3].mustCLI("ready")
	fair := float64(clients) / hosts
	var reached time.Duration
	defer func() {
		if t.Failed() {
			for _, line := range strings.Split(agents[0].logs(), "\n") {
				if strings.Contains(line, "rebalance") || strings.Contains(line, "shed") {
					t.Log(line)
				}
			}
		}
	}()
	testutil.Poll(t, 30*time.Second, "ws4 holding 90% of its fair share", func() error {
		if n := scur("ws4"); float64(n) < 0.9*fair {
			var why []string
			for _, h := range agents {
				st := h.status()
				if st.Rebalance != nil {
					why = append(why, fmt.Sprintf("shed %d: %s", st.Rebalance.Shed, st.Rebalance.Reason))
				}
				if st.Sample != nil {
					why = append(why, st.Sample.Reason)
				}
			}
			return fmt.Errorf("ws4 holds %d, want %.0f: %s; %s; %d reconnects; %q", n, 0.9*fair, counts(), hp.serverState("ws4"), pop.reconnects.Load(), why)
		}
		reached = time.Since(start)
		return nil
	})
	// Let the weights settle a while more, and check nothing went wrong.
	time.Sleep(5 * time.Second)
	var ws []int
	for _, s := range servers {
		ws = append(ws, weight(s.Name))
	}
	if spread(ws) > 1.5 {
		t.Errorf("weights after the join %v spread %.2fx, want within 1.5x: %s", ws, spread(ws), counts())
	}
	for _, s := range servers[:hosts-1] {
		if n := scur(s.Name); float64(n) < 0.85*fair {
			t.Errorf("%s shed down to %d, below its fair share %.0f", s.Name, n, fair)
		}
	}
	st := agents[3].status()
	if st.Rebalance != nil && st.Rebalance.Shed != 0 {
		t.Errorf("the added host shed %d of the connections it had just received", st.Rebalance.Shed)
	}
	var shedOld []int
	for _, h := range agents[:hosts-1] {
		if r := h.status().Rebalance; r != nil {
			shedOld = append(shedOld, r.Shed)
		}
	}
	t.Logf("FIGURE baseline farm (4 Node.js servers, 8%% of a core baseline each, 300 idle sockets, defaults + rebalance): before %s; ws4 reached 90%% of its fair share %v after ready; after %s; old hosts shed %v; %d reconnects",
		before, reached.Round(100*time.Millisecond), counts(), shedOld, pop.reconnects.Load())
	if d := agents[0].status().Sample; d != nil {
		t.Logf("FIGURE ws1's model: baseline %.3f (measured %v), cost %.3f, headroom %.2f, share %.2f: %s; reply %q",
			d.Model.Baseline, d.Model.Measured, d.Model.Cost, d.Model.Headroom, d.Model.Share, d.Reason, agents[0].agentReply())
	}
}

// startNodeFarm starts n Node.js servers with a baseline of 8% of a core,
// each with a hafeed at baselineFarmConfig (defaults plus rebalancing),
// named prefix1 to prefixN, and HAProxy with a server for each: the first
// inService in rotation, the others in maint, as hosts not yet in service.
func startNodeFarm(t *testing.T, hp *haproxyProc, prefix string, n, inService int) ([]*hafeed, []haproxyServer) {
	t.Helper()
	var agents []*hafeed
	var servers []haproxyServer
	for i := range n {
		pid, port := startNodeApp(t, 8)
		name := fmt.Sprintf("%s%d", prefix, i+1)
		admin := ""
		if i >= inService {
			admin = "maint"
		}
		h := startHafeed(t, hafeedOptions{
			config:          baselineFarmConfig,
			appPort:         port,
			admin:           admin,
			defaultInterval: true,
			vars:            map[string]string{"Pid": strconv.Itoa(pid), "Sock": hp.sock, "Server": name},
		})
		agents = append(agents, h)
		servers = append(servers, haproxyServer{Name: name, AppPort: port, AgentPort: h.agentPort()})
	}
	hp.start(agentInter, servers...)
	for _, s := range servers[:inService] {
		hp.waitPolled(s.Name)
	}
	for _, s := range servers[inService:] {
		hp.waitFor(s.Name, 10*time.Second, "maint", serverState.maint)
	}
	return agents, servers
}

// connectIdleClients runs n idle clients through HAProxy until the test
// ends, and returns once all are connected.
func connectIdleClients(t *testing.T, hp *haproxyProc, n int) *idleClients {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	pop := runIdleClients(ctx, &wg, hp.frontend, n)
	testutil.Poll(t, 30*time.Second, "every client connected", func() error {
		if c := pop.connected.Load(); c != int64(n) {
			return fmt.Errorf("%d of %d connected", c, n)
		}
		return nil
	})
	return pop
}

// spread is max/min of positive weights.
func spread(ws []int) float64 {
	lo, hi := ws[0], ws[0]
	for _, w := range ws {
		lo, hi = min(lo, w), max(hi, w)
	}
	if lo <= 0 {
		return 1e9
	}
	return float64(hi) / float64(lo)
}
