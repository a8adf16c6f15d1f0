package agent

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hafeed/hafeed/agent/config"
	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/agent/runtime"
)

// hangingRuntime is a runtime API socket that accepts and never answers,
// until the test ends.
func hangingRuntime(t *testing.T, path string) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
}

// TestAgentAdminChangeAppliedOnlyWhenAnswered checks that with a runtime
// API that never answers, concurrent drain and ready calls either succeed
// with a status that agrees with them, or fail having changed nothing: the
// state in the end is the last successful call's (issue 11, item 1: 8 such
// calls, 4 failed, all 8 applied, and one drain answered "admin state
// ready (reply drain)").
func TestAgentAdminChangeAppliedOnlyWhenAnswered(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	rt := filepath.Join(filepath.Dir(cfg.StateFile), "rt.sock")
	hangingRuntime(t, rt)
	cfg.HAProxy = []config.HAProxyConfig{{Runtime: "unix://" + rt, Backend: "ws", Server: "ws1"}}
	startAgent(t, cfg)

	type result struct {
		command string
		status  *control.Status
		err     error
	}
	results := make(chan result, 8)
	for i := range 8 {
		command := control.CommandDrain
		if i%2 == 1 {
			command = control.CommandReady
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			defer cancel()
			resp, err := control.Call(ctx, cfg.ControlSocket, control.Request{Command: command})
			r := result{command: command, err: err}
			if err == nil {
				r.status = resp.Status
			}
			results <- r
		}()
	}
	var last *control.Status
	ok := 0
	for range 8 {
		r := <-results
		if r.err != nil {
			continue
		}
		ok++
		st := r.status
		replyAdmin := "ready"
		for _, a := range []string{"drain", "maint"} {
			if strings.Contains(st.Reply, a) {
				replyAdmin = a
			}
		}
		if st.Admin != r.command || replyAdmin != r.command {
			t.Errorf("%s answered admin state %s (reply %q): the answer contradicts the change", r.command, st.Admin, st.Reply)
		}
		if last == nil || st.Since.After(last.Since) {
			last = st
		}
	}
	if ok == 0 {
		t.Fatal("no call succeeded: the test shows nothing")
	}
	// Every caller has its answer: nothing may change any more. Wait past
	// the runtime API's push timeout, which is when a late change would land.
	time.Sleep(runtime.PushTimeout + 500*time.Millisecond)
	state := loadState(t, cfg.StateFile)
	if state.Admin.String() != last.Admin || !state.Since.Equal(last.Since) {
		t.Errorf("state after every call returned = %s since %v; want the last successful call's %s since %v (%d of 8 succeeded): a failed call took effect",
			state.Admin, state.Since, last.Admin, last.Since, ok)
	}
}
