package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/haproxy"
)

// callReq sends one request and returns the response and error as they come.
func callReq(t *testing.T, socket string, req control.Request) (*control.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	return control.Call(ctx, socket, req)
}

// TestAgentAdminReason checks that the operator's note on a drain or maint
// (--reason) is kept in the state file and shown in the status until the
// state changes, that a new note for the same state replaces it without
// moving "since", and that ready clears it.
func TestAgentAdminReason(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	startAgent(t, cfg)

	resp, err := callReq(t, cfg.ControlSocket, control.Request{Command: control.CommandDrain, Reason: "deploy v1.4"})
	if err != nil {
		t.Fatal(err)
	}
	drained := resp.Status
	if drained.Admin != "drain" || drained.AdminReason != "deploy v1.4" {
		t.Errorf("drain --reason: admin %q, reason %q; want drain, %q", drained.Admin, drained.AdminReason, "deploy v1.4")
	}
	if got := loadState(t, cfg.StateFile); got.Admin != haproxy.AdminDrain || got.Reason != "deploy v1.4" {
		t.Errorf("state file after drain --reason = %+v, want drain with the reason", got)
	}

	// Draining again without a reason keeps the note.
	if st := call(t, cfg.ControlSocket, control.CommandDrain); st.AdminReason != "deploy v1.4" {
		t.Errorf("drain without a reason after one with it: reason %q, want it kept", st.AdminReason)
	}
	// A new note for the same state replaces it; the state and its time stay.
	resp, err = callReq(t, cfg.ControlSocket, control.Request{Command: control.CommandDrain, Reason: "deploy v1.5"})
	if err != nil {
		t.Fatal(err)
	}
	if st := resp.Status; st.Admin != "drain" || st.AdminReason != "deploy v1.5" || !st.Since.Equal(drained.Since) {
		t.Errorf("second drain --reason: admin %q since %v, reason %q; want drain since %v, %q", st.Admin, st.Since, st.AdminReason, drained.Since, "deploy v1.5")
	}
	if got := loadState(t, cfg.StateFile); got.Reason != "deploy v1.5" || !got.Since.Equal(drained.Since) {
		t.Errorf("state file after the second reason = %+v, want deploy v1.5 since %v", got, drained.Since)
	}

	// maint takes its own note; ready clears it.
	resp, err = callReq(t, cfg.ControlSocket, control.Request{Command: control.CommandMaint, Reason: "disk swap"})
	if err != nil || resp.Status.AdminReason != "disk swap" {
		t.Fatalf("maint --reason = %+v, %v; want the reason disk swap", resp, err)
	}
	if st := call(t, cfg.ControlSocket, control.CommandReady); st.AdminReason != "" {
		t.Errorf("ready after maint --reason: reason %q, want none", st.AdminReason)
	}
	if got := loadState(t, cfg.StateFile); got.Reason != "" {
		t.Errorf("state file after ready = %+v, want no reason", got)
	}
}

// TestAgentAdminReasonRefused checks the notes the agent does not take:
// control characters, too long, and one for ready. Nothing changes.
func TestAgentAdminReasonRefused(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	startAgent(t, cfg)
	for _, req := range []control.Request{
		{Command: control.CommandDrain, Reason: "two\nlines"},
		{Command: control.CommandMaint, Reason: "\x1b[2J"},
		{Command: control.CommandDrain, Reason: strings.Repeat("x", control.MaxReasonBytes+1)},
		{Command: control.CommandReady, Reason: "back"},
	} {
		resp, err := callReq(t, cfg.ControlSocket, req)
		if err == nil || resp == nil || resp.OK {
			t.Errorf("%s with reason %q = %+v, %v; want it refused", req.Command, req.Reason, resp, err)
		}
	}
	if st := call(t, cfg.ControlSocket, control.CommandStatus); st.Admin != "ready" || st.AdminReason != "" {
		t.Errorf("after refused requests: admin %q, reason %q; want ready and none", st.Admin, st.AdminReason)
	}
}

// TestStateFileReason checks that the note survives a save and a load, and
// that a file written before notes existed loads without one (the version
// 1 file in testdata has none; TestStateFileReadsVersion1 reads it).
func TestStateFileReason(t *testing.T) {
	t.Parallel()
	f := StateFile{Path: filepath.Join(t.TempDir(), "state.json")}
	want := State{Admin: haproxy.AdminMaint, Reason: "kernel update, ticket 1234 — rack 7"}
	if err := f.Save(want); err != nil {
		t.Fatal(err)
	}
	got, err := f.Load()
	if err != nil || got.Reason != want.Reason || got.Admin != want.Admin {
		t.Errorf("Load() after Save(%+v) = %+v, %v", want, got, err)
	}
	if err := os.WriteFile(f.Path, []byte(`{"version": 1, "admin": "drain", "since": "2026-01-02T03:04:05Z"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := f.Load(); err != nil || got.Admin != haproxy.AdminDrain || got.Reason != "" {
		t.Errorf("Load() of a file without a reason = %+v, %v; want drain, no reason", got, err)
	}
}
