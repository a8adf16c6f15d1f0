package agent

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hafeed/hafeed/agent/config"
	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/agent/runtime"
	"github.com/hafeed/hafeed/haproxy"
	"github.com/hafeed/hafeed/internal/testutil"
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
		testutil.Waited(t, &wg, waitLimit, "the fake runtime's connections to end")
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
		r := testutil.Recv(t, results, 2*waitLimit, "an admin call to return")
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

// TestAgentAdminChangeAgreesWithDisk checks that whatever step of the
// save fails, the state the agent serves is the one the state file holds
// (issue 17, item 2: with the directory's fsync refused after the rename,
// drain answered "so it stays ready" while state.json said drain, and the
// host came up drained after a restart).
func TestAgentAdminChangeAgreesWithDisk(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		hooks func(t *testing.T) *fileHooks
		// applied says whether the drain is on disk after the failure.
		applied     bool
		wantMessage string
	}{
		{
			name: "directory sync fails after the rename",
			hooks: func(*testing.T) *fileHooks {
				return &fileHooks{syncDir: func(*os.File) error { return &os.PathError{Op: "fsync", Path: "dir", Err: syscall.EIO} }}
			},
			applied:     true,
			wantMessage: "input/output error",
		},
		{
			name: "the temporary file vanishes before the rename",
			hooks: func(t *testing.T) *fileHooks {
				return &fileHooks{written: func(tmp string) {
					if err := os.Remove(tmp); err != nil {
						t.Error(err)
					}
				}}
			},
			applied:     false,
			wantMessage: "so it stays ready",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			startAgentWith(t, Options{Config: cfg}, func(a *Agent) { a.stateHooks = tt.hooks(t) })

			resp, err := callErr(cfg.ControlSocket, control.CommandDrain)
			disk := loadState(t, cfg.StateFile).Admin
			st := call(t, cfg.ControlSocket, control.CommandStatus)
			if st.Admin != disk.String() {
				t.Errorf("after a drain whose save failed: the agent serves %s, the state file holds %s", st.Admin, disk)
			}
			if tt.applied != (disk == haproxy.AdminDrain) {
				t.Errorf("state file holds %s; want the drain applied: %t", disk, tt.applied)
			}
			switch {
			case tt.applied && (err != nil || !strings.Contains(resp.Status.Warning, tt.wantMessage)):
				t.Errorf("drain saved but not synced = %+v, %v; want it applied with a warning saying %q", resp, err, tt.wantMessage)
			case !tt.applied && (err == nil || !strings.Contains(err.Error(), tt.wantMessage)):
				t.Errorf("drain not saved = %v; want an error saying %q", err, tt.wantMessage)
			}
		})
	}
}
