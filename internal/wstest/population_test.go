package wstest

import (
	"context"
	"testing"
	"time"

	"github.com/hafeed/hafeed/internal/testutil"
)

func TestPopulationShedClientsReconnectWithoutLoss(t *testing.T) {
	t.Parallel()
	const clients, shedCount = 200, 50
	srv, _ := runServer(t, "127.0.0.1:0", ServerOptions{})
	pop := runPopulation(t, wsURL(srv), PopulationOptions{
		Clients:     clients,
		Interval:    100 * time.Millisecond,
		HotFraction: 0.1,
		HotInterval: 20 * time.Millisecond,
		RampUp:      200 * time.Millisecond,
	})

	before := await(t, pop, 5*time.Second, "all clients connected and talking", func(s Stats) bool {
		return s.Connected == clients && s.Messages >= 2*clients
	})
	if got := srv.Registry().Len(); got != clients {
		t.Fatalf("server registry holds %d connections, want %d", got, clients)
	}

	if closed := srv.Registry().Shed(t.Context(), shedCount); closed != shedCount {
		t.Fatalf("Shed(%d) = %d", shedCount, closed)
	}
	after := await(t, pop, 5*time.Second, "shed clients back", func(s Stats) bool {
		return s.Reconnects == shedCount && s.Connected == clients && s.Messages >= before.Messages+2*clients
	})
	testutil.Until(t, 5*time.Second, "server holds every client again", func() bool {
		return srv.Conns() == clients && srv.Registry().Len() == clients
	})

	if after.ServiceRestarts != shedCount {
		t.Errorf("ServiceRestarts = %d, want %d", after.ServiceRestarts, shedCount)
	}
	if after.Lost != 0 || after.Mismatched != 0 {
		t.Errorf("Lost = %d, Mismatched = %d, want none", after.Lost, after.Mismatched)
	}
	if after.DialFailures != 0 {
		t.Errorf("DialFailures = %d, want 0", after.DialFailures)
	}
	if after.LongestDisconnect <= 0 || after.LongestDisconnect > 2*time.Second {
		t.Errorf("LongestDisconnect = %v, want above 0 and at most the backoff cap", after.LongestDisconnect)
	}
	if got := after.ClientsDisconnectedOver(0); got != 0 {
		t.Errorf("ClientsDisconnectedOver(0) = %d with every client connected", got)
	}
}

func TestPopulationReconnectsAfterServerRestart(t *testing.T) {
	t.Parallel()
	const clients = 200
	first, stopFirst := runServer(t, "127.0.0.1:0", ServerOptions{})
	addr := first.Addr().String()
	pop := runPopulation(t, wsURL(first), PopulationOptions{
		Clients:  clients,
		Interval: 100 * time.Millisecond,
	})
	await(t, pop, 5*time.Second, "all clients connected", func(s Stats) bool {
		return s.Connected == clients && s.Messages >= clients
	})

	stopFirst()
	down := await(t, pop, 5*time.Second, "all clients disconnected", func(s Stats) bool {
		return s.Connected == 0 && s.ClientsDisconnectedOver(0) == clients
	})
	if down.ServiceRestarts != clients {
		t.Errorf("ServiceRestarts = %d, want %d: a stopping server closes with 1012", down.ServiceRestarts, clients)
	}

	second, _ := runServer(t, addr, ServerOptions{})
	up := await(t, pop, 5*time.Second, "all clients back on the restarted server", func(s Stats) bool {
		return s.Connected == clients && s.Reconnects == clients && s.Messages >= down.Messages+clients
	})
	testutil.Until(t, 5*time.Second, "restarted server holds every client", func() bool {
		return second.Conns() == clients
	})
	if up.Lost != 0 || up.Mismatched != 0 {
		t.Errorf("Lost = %d, Mismatched = %d, want none", up.Lost, up.Mismatched)
	}
	if up.ClientsDisconnectedOver(0) != 0 {
		t.Errorf("ClientsDisconnectedOver(0) = %d with every client connected", up.ClientsDisconnectedOver(0))
	}
	if up.LongestDisconnect < 0 || up.LongestDisconnect > 5*time.Second {
		t.Errorf("LongestDisconnect = %v", up.LongestDisconnect)
	}
}

func TestPopulationChurnReplacesClients(t *testing.T) {
	t.Parallel()
	const clients = 50
	srv, _ := runServer(t, "127.0.0.1:0", ServerOptions{})
	pop := runPopulation(t, wsURL(srv), PopulationOptions{
		Clients:  clients,
		Interval: 20 * time.Millisecond,
		Churn:    0.5,
	})
	churned := await(t, pop, 5*time.Second, "clients churned", func(s Stats) bool {
		return s.Departures >= 20
	})
	s := await(t, pop, 5*time.Second, "population whole again", func(s Stats) bool {
		return s.Connected == clients && s.Messages > churned.Messages
	})
	if s.Lost != 0 || s.Mismatched != 0 {
		t.Errorf("Lost = %d, Mismatched = %d, want none", s.Lost, s.Mismatched)
	}
	if s.Reconnects != 0 || s.ServiceRestarts != 0 {
		t.Errorf("Reconnects = %d, ServiceRestarts = %d: churn is neither", s.Reconnects, s.ServiceRestarts)
	}
}

func TestPopulationRunsOnce(t *testing.T) {
	t.Parallel()
	pop, err := NewPopulation("ws://127.0.0.1:1/", PopulationOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := pop.Run(ctx); err != nil {
		t.Fatalf("first Run: %v", err)
	}
	if err := pop.Run(ctx); err == nil {
		t.Fatal("second Run returned nil, want an error")
	}
}

func TestNewPopulationRejectsBadOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		target string
		opts   PopulationOptions
	}{
		{name: "http target", target: "http://127.0.0.1/"},
		{name: "unparsable target", target: "ws://[::1"},
		{name: "hot fraction above one", target: "ws://127.0.0.1/", opts: PopulationOptions{HotFraction: 1.5}},
		{name: "negative hot fraction", target: "ws://127.0.0.1/", opts: PopulationOptions{HotFraction: -0.1}},
		{name: "negative churn", target: "ws://127.0.0.1/", opts: PopulationOptions{Churn: -1}},
		{name: "payload too small", target: "ws://127.0.0.1/", opts: PopulationOptions{PayloadSize: 8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := NewPopulation(tt.target, tt.opts); err == nil {
				t.Errorf("NewPopulation(%q, %+v) returned no error", tt.target, tt.opts)
			}
		})
	}
}
