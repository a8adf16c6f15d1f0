package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hafeed/hafeed/internal/farm"
)

// TestSmoke runs the quick steady-state scenario under leastconn + hafeed
// with real processes (HAProxy, backends, agents, clients) and checks what
// must hold on any machine, however loaded: no message lost, no client
// left disconnected, every process stopped afterwards. The balance figures
// are logged, not asserted: they depend on the machine.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts HAProxy and a dozen processes for about 25 s")
	}
	if err := farm.CheckHAProxy(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	// The child roles run from a build without the race detector, so that
	// the load they make is the same under go test -race.
	self := filepath.Join(dir, "balance")
	build := exec.CommandContext(ctx, "go", "build", "-o", self, "github.com/hafeed/hafeed/bench/balance")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the benchmark: %v\n%s", err, out)
	}

	opts, err := parseFlags([]string{"-quick", "-scenarios", "steady", "-policies", "hafeed", "-clients-scale", "0.5"})
	if err != nil {
		t.Fatal(err)
	}
	var progress strings.Builder
	e, err := farm.Prepare(ctx, self, opts.load, &progress)
	if e != nil {
		t.Cleanup(func() {
			if err := e.StopAll(); err != nil {
				t.Error(err)
			}
			if !t.Failed() {
				os.RemoveAll(e.Dir)
			} else {
				t.Logf("logs of every process: %s", e.LogDir())
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	scs, runs := plan(opts)
	if len(scs) != 1 || len(runs) != 1 {
		t.Fatalf("plan: %d scenarios, %d runs, want 1 and 1", len(scs), len(runs))
	}
	res, err := runScenario(ctx, e, runs[0].sc, runs[0].pol, opts.scale)
	t.Logf("progress:\n%s", progress.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("steady under hafeed: max/mean CPU %.2f, CPU %v cores, conns %v, %d messages, host CPU %.0f%%",
		res.MaxMeanCPU, res.WindowCPU, res.WindowConns, res.Messages, 100*res.HostCPU)

	if res.Messages == 0 {
		t.Errorf("no message was echoed")
	}
	if res.Lost != 0 || res.Mismatched != 0 {
		t.Errorf("lost %d messages and saw %d mismatched echoes, want none", res.Lost, res.Mismatched)
	}
	if res.Failures != 0 || res.Left != 0 {
		t.Errorf("%d clients were disconnected for more than 5 s, %d still at the end; want none (longest disconnect %.1fs)",
			res.Failures, res.Left, res.LongestDisconnect)
	}
	if res.Clients == 0 || len(res.Samples) == 0 {
		t.Errorf("no clients (%d) or no samples (%d)", res.Clients, len(res.Samples))
	}
	if n := e.Running(); n != 0 {
		t.Errorf("%d processes still running after the run", n)
	}
}

// TestPlan checks the runs each mode selects.
func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{nil, []string{
			"steady/roundrobin", "steady/leastconn", "steady/hafeed", "steady/hafeed+rebalance",
			"scale-up/roundrobin", "scale-up/leastconn", "scale-up/hafeed", "scale-up/hafeed+rebalance",
			"scale-down/roundrobin", "scale-down/leastconn", "scale-down/hafeed", "scale-down/hafeed+rebalance",
			"reload/roundrobin", "reload/leastconn", "reload/hafeed", "reload/hafeed+rebalance"}},
		{[]string{"-quick"}, []string{"steady/leastconn", "steady/hafeed", "scale-up/hafeed+rebalance", "scale-down/hafeed+rebalance", "reload/hafeed+rebalance"}},
		{[]string{"-quick", "-policies", "roundrobin", "-scenarios", "reload"}, []string{"reload/roundrobin"}},
	} {
		opts, err := parseFlags(tc.args)
		if err != nil {
			t.Fatal(err)
		}
		_, runs := plan(opts)
		var got []string
		for _, r := range runs {
			got = append(got, r.sc.Name+"/"+r.pol.Name)
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%v: runs %v, want %v", tc.args, got, tc.want)
		}
	}
}
