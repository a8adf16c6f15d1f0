package netaccept

import (
	"context"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// failing fails its first n accepts with EMFILE.
type failing struct {
	net.Listener
	n, calls atomic.Int32
}

func (l *failing) Accept() (net.Conn, error) {
	l.calls.Add(1)
	if l.n.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func TestAcceptRetriesAfterErrors(t *testing.T) {
	t.Parallel()
	ln := &failing{Listener: listen(t)}
	ln.n.Store(3)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a := &Acceptor{Listener: ln, Log: zerolog.Nop(), What: "test"}
	conn, err := a.Accept(context.Background())
	if err != nil || conn == nil {
		t.Fatalf("Accept after 3 errors = %v, %v; want the connection", conn, err)
	}
	conn.Close()
	if got := ln.calls.Load(); got != 4 {
		t.Errorf("Accept called %d times, want 4 (3 errors, then the connection)", got)
	}
	if a.backoff != 0 {
		t.Errorf("back-off %v after a good accept, want it reset", a.backoff)
	}
}

func TestAcceptStops(t *testing.T) {
	t.Parallel()
	t.Run("closed listener", func(t *testing.T) {
		t.Parallel()
		ln := listen(t)
		ln.Close()
		a := &Acceptor{Listener: ln, Log: zerolog.Nop()}
		if conn, err := a.Accept(context.Background()); conn != nil || !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept on a closed listener = %v, %v; want net.ErrClosed", conn, err)
		}
	})
	t.Run("context done while backing off", func(t *testing.T) {
		t.Parallel()
		ln := &failing{Listener: listen(t)}
		ln.n.Store(1 << 30)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		a := &Acceptor{Listener: ln, Log: zerolog.Nop()}
		done := make(chan error, 1)
		go func() {
			conn, err := a.Accept(ctx)
			if conn != nil {
				conn.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Accept after ctx ended = %v, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Accept kept retrying after its context ended")
		}
	})
}
