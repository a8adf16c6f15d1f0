package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hafeed/hafeed/internal/haproxytest"
	"github.com/hafeed/hafeed/internal/sockdiag"
	"github.com/hafeed/hafeed/internal/testutil"
)

// packagedConfig is /etc/hafeed/hafeed.yaml as the Debian package ships
// it: the Makefile's deb target writes `hafeed config example` there.
func packagedConfig(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(cliBin, "config", "example").Output()
	if err != nil {
		t.Fatalf("hafeed config example: %v", err)
	}
	return string(out)
}

// dropInDrain is the command the packaged hafeed-drain.conf runs on
// ExecStop=, word for word, with the installed binary replaced by the
// tree's.
func dropInDrain(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../packaging/hafeed-drain.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if cmd, ok := strings.CutPrefix(line, "ExecStop="); ok && cmd != "" {
			args := strings.Fields(strings.TrimLeft(cmd, "-+"))
			if len(args) < 2 || args[0] != "/usr/bin/hafeed" || args[1] != "drain" {
				t.Fatalf("hafeed-drain.conf's ExecStop= is %q, not a hafeed drain", cmd)
			}
			return append([]string{cliBin}, args[1:]...)
		}
	}
	t.Fatal("hafeed-drain.conf has no ExecStop= line")
	return nil
}

// runDropInDrain starts the drop-in's drain against agent as systemd would
// run it (the control socket found through the environment: the command
// line is the file's), and returns a channel with its exit code and output.
func runDropInDrain(t *testing.T, agent *hafeed) <-chan drainResult {
	t.Helper()
	args := dropInDrain(t)
	c := exec.Command(args[0], args[1:]...)
	c.Env = append(os.Environ(), "HAFEED_CONTROL_SOCKET="+agent.ctlSock)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan drainResult, 1)
	exited := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(exited)
		err := c.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			code = -1
		}
		done <- drainResult{code, stdout.String(), stderr.String(), time.Since(start)}
	}()
	t.Cleanup(func() {
		c.Process.Kill()
		testutil.Recv(t, exited, 10*time.Second, "the drain command to exit")
	})
	return done
}

type drainResult struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

// packagedFarm starts two Node.js socket servers, s1 and s2, each with an
// agent on cfg (a template given the server's port as {{.Port}}) at the
// default interval, and HAProxy over them.
func packagedFarm(t *testing.T, hb haproxytest.Build, cfg string) (*haproxyProc, []*hafeed, []int) {
	t.Helper()
	hp := newHAProxyOf(t, hb)
	var agents []*hafeed
	var servers []haproxyServer
	var pids []int
	for i := range 2 {
		pid, port := startNodeApp(t, 0)
		h := startHafeed(t, hafeedOptions{config: cfg, appPort: port, defaultInterval: true, vars: map[string]string{"Port": strconv.Itoa(port)}})
		agents, pids = append(agents, h), append(pids, pid)
		servers = append(servers, haproxyServer{Name: fmt.Sprintf("s%d", i+1), AppPort: port, AgentPort: h.agentPort()})
	}
	hp.start(agentInter, servers...)
	for _, s := range servers {
		hp.waitPolled(s.Name)
	}
	return hp, agents, pids
}

// TestPackagedDeployDrain runs the packaged drop-in's command against the
// packaged config, which has no way to close connections (issue 17: the
// command was refused at once and the host never drained, so stopping the
// server dropped every socket). The host drains: HAProxy marks it DRAIN
// and sends it nothing new, the command says loudly that nothing is
// closed, clients that leave by themselves come back on the other host,
// and it exits 0 once none is left.
func TestPackagedDeployDrain(t *testing.T) {
	t.Parallel()
	forEachHAProxy(t, func(t *testing.T, hb haproxytest.Build) {
		// The agents count their own server's port (--ports): the
		// packaged sources.ports: [] would count every listening port of
		// this machine, where other tests run at the same time.
		hp, agents, _ := packagedFarm(t, hb, packagedConfig(t))
		const n = 40
		var clients []net.Conn
		dial := func() {
			c, err := net.Dial("tcp", hp.frontend)
			if err != nil {
				t.Fatal(err)
			}
			clients = append(clients, c)
		}
		t.Cleanup(func() {
			for _, c := range clients {
				c.Close()
			}
		})
		for range n {
			dial()
		}
		testutil.Poll(t, 10*time.Second, "HAProxy holding the clients on both servers", func() error {
			s1, s2 := atoi(t, hp.stat("s1")["scur"]), atoi(t, hp.stat("s2")["scur"])
			if s1+s2 != n || s1 == 0 {
				return fmt.Errorf("s1 %d, s2 %d", s1, s2)
			}
			return nil
		})
		onS1 := atoi(t, hp.stat("s1")["scur"])

		done := runDropInDrain(t, agents[0])
		hp.waitFor("s1", 5*time.Second, "drained by the drop-in's command", serverState.drained)
		// The clients leave by themselves, four every 200 ms, and come
		// straight back, as reloaded browser tabs do: through HAProxy,
		// onto s2.
		var res drainResult
		left := clients
		clients = nil
	churn:
		for {
			select {
			case res = <-done:
				break churn
			case <-time.After(200 * time.Millisecond):
			case <-time.After(time.Minute):
				t.Fatalf("the drop-in's drain still runs a minute after every client could have left")
			}
			for range min(4, len(left)) {
				left[0].Close()
				left = left[1:]
				dial()
			}
		}
		t.Logf("PACKAGED drain of %d connections, nothing closing them: exit %d after %v\nstdout: %s\nstderr: %s", onS1, res.code, res.took.Round(time.Millisecond), res.stdout, res.stderr)
		if res.code != 0 || !strings.HasPrefix(res.stdout, "drained: 0 connections left") || !strings.Contains(res.stdout, "nothing closed them") {
			t.Errorf("the drop-in's drain = exit %d, stdout %q; want 0 and drained, saying nothing closed them", res.code, res.stdout)
		}
		if !strings.Contains(res.stderr, "warning: NOTHING IS BEING CLOSED") {
			t.Errorf("the drop-in's drain printed %q; want the warning that nothing is closed", res.stderr)
		}
		if s := hp.serverState("s1"); !s.drained() {
			t.Errorf("s1 after the drain = %v, want still drained", s)
		}
		if s1, s2 := atoi(t, hp.stat("s1")["scur"]), atoi(t, hp.stat("s2")["scur"]); s1 != 0 || s2 != n {
			t.Errorf("after the drain s1 holds %d, s2 %d; want 0 and %d", s1, s2, n)
		}
	})
}

// TestKernelShedDrain runs the drop-in's command against the packaged
// config with shed.via: kernel and the server's port, on Node.js servers:
// the kernel aborts s1's sockets at the command's rate, HAProxy closes the
// clients' sides, and the clients, which reconnect as WebSocket clients
// do, all end up on s2 while the Node.js server keeps running.
func TestKernelShedDrain(t *testing.T) {
	t.Parallel()
	if ok, err := sockdiag.HasNetAdmin(); err != nil || !ok {
		t.Skipf("SKIPPED, NOT PASSED: shed.via: kernel needs CAP_NET_ADMIN, which this test lacks (%v): run the e2e tests as root", err)
	}
	cfg := packagedConfig(t)
	for old, new := range map[string]string{"  ports: []\n": "  ports: [{{.Port}}]\n", "  via: runtime\n": "  via: kernel\n"} {
		if !strings.Contains(cfg, old) {
			t.Fatalf("the packaged config has no %q line to change", old)
		}
		cfg = strings.Replace(cfg, old, new, 1)
	}
	forEachHAProxy(t, func(t *testing.T, hb haproxytest.Build) {
		hp, agents, pids := packagedFarm(t, hb, cfg)
		const n = 100
		pop := connectIdleClients(t, hp, n)
		onS1 := atoi(t, hp.stat("s1")["scur"])
		if onS1 == 0 {
			t.Fatal("no client on s1 to move")
		}
		res := <-runDropInDrain(t, agents[0])
		if res.code != 0 || !strings.HasPrefix(res.stdout, "drained: 0 connections left") || strings.Contains(res.stdout, "nothing closed") {
			t.Errorf("the drop-in's drain = exit %d, stdout %q, stderr %q; want 0, drained by shedding", res.code, res.stdout, res.stderr)
		}
		// At 50 a second, spread with jitter: not all at once.
		if min := time.Duration(onS1) * time.Second / 50 / 2; res.took < min {
			t.Errorf("%d connections shed in %v, faster than half of 50 a second allows (%v)", onS1, res.took, min)
		}
		testutil.Poll(t, 10*time.Second, "every client back, on s2", func() error {
			if c, s2 := pop.connected.Load(), atoi(t, hp.stat("s2")["scur"]); c != n || s2 != n {
				return fmt.Errorf("%d clients connected, s2 holds %d", c, s2)
			}
			return nil
		})
		t.Logf("KERNEL drain --shed-rate 50 of %d connections on %s: exit %d after %v; clients saw %d FINs and %d resets from HAProxy, reconnected %d times, longest gap %v\nstdout: %s",
			onS1, hb.Name(), res.code, res.took.Round(time.Millisecond), pop.eofs.Load(), pop.resets.Load(), pop.reconnects.Load(), pop.longestDown().Round(time.Millisecond), res.stdout)
		if got := pop.reconnects.Load(); got < int64(onS1) {
			t.Errorf("clients reconnected %d times, fewer than the %d sockets closed", got, onS1)
		}
		if err := syscall.Kill(pids[0], 0); err != nil {
			t.Errorf("the Node.js server whose sockets the kernel closed is gone: %v", err)
		}
		if st := agents[0].status(); st.Shed == nil || st.Shed.Via != "kernel" || st.Shed.Closed < onS1 {
			t.Errorf("s1's agent's shedding = %+v, want %d or more closed via kernel", st.Shed, onS1)
		}
	})
}
