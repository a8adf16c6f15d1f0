package agent

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hafeed/hafeed/agent/config"
	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/internal/testutil"
)

// TestLockOrder runs every path that takes a lock at once, for a while,
// against a runtime API that never answers: admin changes with shedding,
// stop-shed, status, scrapes, reloads, the sampling loop, the persister,
// the rebalancer and the endpoints. Under -race it finds unguarded fields;
// a lock taken out of order, or held across I/O without a deadline, shows
// as a call that does not return within its bound.
func TestLockOrder(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	rt := filepath.Join(filepath.Dir(cfg.StateFile), "rt.sock")
	hangingRuntime(t, rt)
	cfg.HAProxy = []config.HAProxyConfig{{Runtime: "unix://" + rt}}
	cfg.Interval = 50 * time.Millisecond
	cfg.Rebalance.Enabled = true
	hangups := make(chan os.Signal, 1)
	var mu sync.Mutex
	next := cfg
	a := startAgentWith(t, Options{Config: cfg, Hangups: hangups, Reload: func() (config.Config, error) {
		mu.Lock()
		defer mu.Unlock()
		return next, nil
	}})

	const (
		callBound = 3 * time.Second // a call's deadline plus the push's
		runFor    = 2 * time.Second
	)
	stop := time.Now().Add(runFor)
	var wg sync.WaitGroup
	loop := func(name string, f func(ctx context.Context)) {
		wg.Go(func() {
			for i := 0; time.Now().Before(stop); i++ {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				start := time.Now()
				f(ctx)
				if took := time.Since(start); took > callBound {
					t.Errorf("%s took %v, more than its bound of %v: a lock waited past its deadline", name, took, callBound)
				}
				cancel()
			}
		})
	}
	admin := []string{control.CommandDrain, control.CommandReady, control.CommandMaint}
	n := 0
	loop("admin changes", func(ctx context.Context) {
		n++
		req := control.Request{Command: admin[n%len(admin)]}
		if req.Command == control.CommandDrain {
			req.ShedRate, req.Timeout = 100, time.Second
		}
		control.Call(ctx, cfg.ControlSocket, req)
	})
	loop("stop-shed", func(ctx context.Context) {
		control.Call(ctx, cfg.ControlSocket, control.Request{Command: control.CommandStopShed})
	})
	loop("status", func(ctx context.Context) {
		control.Call(ctx, cfg.ControlSocket, control.Request{Command: control.CommandStatus})
	})
	loop("scrape", func(context.Context) {
		ch := make(chan prometheus.Metric, 1024)
		collector{a: a, version: "test"}.Collect(ch)
	})
	flip := false
	loop("reload", func(context.Context) {
		flip = !flip
		mu.Lock()
		next.Shed.Via = map[bool]config.ShedVia{true: config.ShedViaHook, false: config.ShedViaRuntime}[flip]
		next.Shed.HookURL = "http://127.0.0.1:1/hafeed/shed"
		next.Rebalance.Enabled = flip
		mu.Unlock()
		select {
		case hangups <- syscall.SIGHUP:
		default:
		}
		time.Sleep(20 * time.Millisecond)
	})
	testutil.Waited(t, &wg, time.Minute, "the callers to stop: a deadlock?")
}
