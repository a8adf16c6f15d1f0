package wstest

import (
	"context"
	"sync"
	"testing"
	"time"
)

// runServer starts a Server on addr and returns it with the function that
// stops it; the test's cleanup stops it too.
func runServer(t *testing.T, addr string, opts ServerOptions) (*Server, func()) {
	t.Helper()
	srv, err := NewServer(addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Server.Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return srv, stop
}

// runPopulation starts a Population against target; the test's cleanup stops
// it, before the servers started earlier.
func runPopulation(t *testing.T, target string, opts PopulationOptions) *Population {
	t.Helper()
	pop, err := NewPopulation(target, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pop.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Population.Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Population.Run still running 15s after its context ended")
		}
	})
	return pop
}

// await waits up to timeout for cond, failing the test with the last stats
// and what was awaited.
func await(t *testing.T, pop *Population, timeout time.Duration, what string, cond func(Stats) bool) Stats {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	s, err := pop.Await(ctx, cond)
	if err != nil {
		t.Fatalf("%s: %v; stats %+v", what, err, s)
	}
	return s
}

func wsURL(srv *Server) string {
	return "ws://" + srv.Addr().String() + "/"
}
