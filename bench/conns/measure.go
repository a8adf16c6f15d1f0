package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	gnet "github.com/shirou/gopsutil/v4/net"

	"github.com/hafeed/hafeed/bench/internal/procstat"
	"github.com/hafeed/hafeed/internal/supervise"
	"github.com/hafeed/hafeed/internal/testutil"
	"github.com/hafeed/hafeed/metrics"
)

// measureCounters times the three ways of counting. hafeed and ss run
// interleaved, after one untimed warm-up each, so that drift on the machine
// hits both alike; gopsutil runs after them.
func measureCounters(ctx context.Context, o options, port int, res *results) error {
	c := &metrics.Conns{Ports: []uint16{uint16(port)}}
	ssCmd := fmt.Sprintf("ss -Htn state established '( sport = :%d )' | wc -l", port)
	hafeed := method{Name: "hafeed", Command: fmt.Sprintf("metrics.Conns{Ports: []uint16{%d}}.Count(ctx)", port)}
	ss := method{Name: "ss", Command: ssCmd}
	logf("timing hafeed and ss, %d runs each", o.reps)
	for i := range o.reps + 1 {
		t := time.Now()
		n, err := c.Count(ctx)
		d := time.Since(t)
		if err != nil {
			return fmt.Errorf("hafeed count: %w", err)
		}
		if i > 0 {
			hafeed.add(n.Established, d)
		}
		t = time.Now()
		out, err := exec.CommandContext(ctx, "sh", "-c", ssCmd).Output()
		d = time.Since(t)
		if err != nil {
			return fmt.Errorf("%s: %w", ssCmd, err)
		}
		got, err := strconv.Atoi(strings.TrimSpace(string(out)))
		if err != nil {
			return fmt.Errorf("%s printed %q", ssCmd, out)
		}
		if i > 0 {
			ss.add(got, d)
		}
	}
	hafeed.Via = c.Method()
	res.Methods = append(res.Methods, hafeed, ss)

	if o.noGopsutil {
		return nil
	}
	logf("timing gopsutil, %d runs", o.gopsutilReps)
	gp := method{Name: "gopsutil", Command: `net.ConnectionsWithContext(ctx, "tcp"), filtered by local port and ESTABLISHED`}
	for range o.gopsutilReps {
		t := time.Now()
		cs, err := gnet.ConnectionsWithContext(ctx, "tcp")
		d := time.Since(t)
		if err != nil {
			return fmt.Errorf("gopsutil: %w", err)
		}
		n := 0
		for _, c := range cs {
			if c.Laddr.Port == uint32(port) && c.Status == "ESTABLISHED" {
				n++
			}
		}
		gp.add(n, d)
		logf("  gopsutil: %d in %s", n, d.Round(time.Millisecond))
	}
	res.Methods = append(res.Methods, gp)
	return nil
}

// measureAgent runs the real agent on the port and measures its steady CPU
// and RSS.
func measureAgent(ctx context.Context, o options, bin, dir string, port int) (*agentResult, error) {
	agentAddr, err := testutil.FreeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "control.sock")
	args := []string{"run", "--ports", strconv.Itoa(port), "--interval", "1s",
		"--agent-listen", agentAddr, "--control-socket", sock,
		"--state-file", filepath.Join(dir, "state.json"), "--log-level", "warn"}
	r := &agentResult{Command: "hafeed " + strings.Join(args, " "), Settle: o.settle.Seconds(), Window: o.window.Seconds()}
	cmd := exec.Command(bin, args...)
	cmd.Env = hafeedEnv()
	sup := supervise.New("")
	agent, err := sup.Start("hafeed", cmd)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := sup.Stop(agent); err != nil {
			logf("%v", err)
		}
	}()
	exited := agent.Done()
	// failed adds the agent's exit status when that is what went wrong.
	failed := func(err error) error {
		if agent.Exited() {
			return fmt.Errorf("%w (%v)", err, agent.Err())
		}
		return err
	}
	pid := agent.PID()
	if err := waitListening(ctx, agentAddr, exited); err != nil {
		return nil, failed(err)
	}
	logf("agent pid %d up (%s); settling %s, then measuring for %s", pid, agentAddr, o.settle, o.window)
	if err := sleep(ctx, o.settle, exited); err != nil {
		return nil, failed(err)
	}
	hz := procstat.ClockTicks()
	t0 := time.Now()
	host := procstat.ReadHostCPU()
	user0, sys0, err := procstat.CPUTicks(pid)
	if err != nil {
		return nil, failed(err)
	}
	var rssMax int64
	for time.Since(t0) < o.window {
		rss, err := procstat.StatusKB(pid, "VmRSS")
		if err != nil {
			return nil, failed(err)
		}
		rssMax = max(rssMax, rss)
		if err := sleep(ctx, 250*time.Millisecond, exited); err != nil {
			return nil, failed(err)
		}
	}
	user1, sys1, err := procstat.CPUTicks(pid)
	if err != nil {
		return nil, failed(err)
	}
	elapsed := time.Since(t0).Seconds()
	r.HostBusy = host.BusySince()
	r.Window = elapsed
	r.UserSeconds = float64(user1-user0) / float64(hz)
	r.SysSeconds = float64(sys1-sys0) / float64(hz)
	r.CPUSeconds = r.UserSeconds + r.SysSeconds
	r.CPUPercent = r.CPUSeconds / elapsed * 100
	r.RSSMiB = float64(rssMax) / 1024
	if hwm, err := procstat.StatusKB(pid, "VmHWM"); err == nil {
		r.HWMMiB = float64(hwm) / 1024
	}

	// What the agent itself saw, after the window so it costs nothing there.
	out, err := exec.CommandContext(ctx, bin, "status", "--json", "--control-socket", sock).Output()
	if err != nil {
		return nil, fmt.Errorf("hafeed status: %w", err)
	}
	var st struct {
		Reply  string `json:"reply"`
		Sample *struct {
			Duration    time.Duration `json:"duration_ns"`
			Connections int           `json:"connections"`
			ConnMethod  string        `json:"conn_method"`
		} `json:"sample"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("hafeed status --json: %w", err)
	}
	r.Reply = st.Reply
	if st.Sample != nil {
		r.Connections = st.Sample.Connections
		r.Method = st.Sample.ConnMethod
		r.SampleMs = float64(st.Sample.Duration) / 1e6
	}
	logf("agent: %.2f%% of a core, max RSS %.1f MiB, last sample %d connections via %s in %.1f ms",
		r.CPUPercent, r.RSSMiB, r.Connections, r.Method, r.SampleMs)
	return r, nil
}

// hafeedEnv is the environment without HAFEED_* settings that would point
// the agent at another config or control socket.
func hafeedEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "HAFEED_") })
}

// waitListening waits until the agent accepts connections on addr.
func waitListening(ctx context.Context, addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp4", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("agent not listening on %s after 15 s: %w", addr, err)
		}
		if err := sleep(ctx, 50*time.Millisecond, exited); err != nil {
			return err
		}
	}
}

// sleep waits for d, failing early if ctx ends or the agent exits.
func sleep(ctx context.Context, d time.Duration, exited <-chan struct{}) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-exited:
		return errors.New("the agent exited")
	}
}
