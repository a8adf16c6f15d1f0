package control

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/hafeed/hafeed/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitLimit = 5 * time.Second

// echo answers every request with a status naming the command.
type echo struct{}

func (echo) Handle(_ context.Context, req Request) Response {
	if req.Command == "fail" {
		return Response{Error: "asked to fail"}
	}
	return Response{OK: true, Status: &Status{Admin: req.Command}}
}

func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hfc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "control.sock")
}

func TestCallRoundTrip(t *testing.T) {
	t.Parallel()
	path := socketPath(t)
	srv, err := Listen(path, echo{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path, echo{}, zerolog.Nop()); !errors.Is(err, ErrAlreadyRunning) {
		t.Errorf("second Listen on %s = %v, want ErrAlreadyRunning", path, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()

	callCtx, callCancel := context.WithTimeout(context.Background(), waitLimit)
	defer callCancel()
	resp, err := Call(callCtx, path, Request{Command: CommandDrain})
	if err != nil || !resp.OK || resp.Status.Admin != CommandDrain {
		t.Errorf("Call(drain) = %+v, %v; want OK with the echo", resp, err)
	}
	if _, err := Call(callCtx, path, Request{Command: "fail"}); err == nil || err.Error() != "agent: asked to fail" {
		t.Errorf("Call(fail) = %v, want the agent's error", err)
	}

	cancel()
	if err := testutil.Recv(t, done, waitLimit, "Run to return after cancel"); err != nil {
		t.Errorf("Run() = %v after cancel", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after Run: %v", err)
	}
	if _, err := Call(callCtx, path, Request{Command: CommandStatus}); !errors.Is(err, ErrAgentUnreachable) {
		t.Errorf("Call after the server stopped = %v, want ErrAgentUnreachable", err)
	}
	// Close released the lock: a new server may take the socket.
	again, err := Listen(path, echo{}, zerolog.Nop())
	if err != nil {
		t.Fatalf("Listen after the first server stopped = %v", err)
	}
	again.Close()
}
