package wstest

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
)

// fault is what a faulty server does with the third message of its first
// connection; it echoes every other message.
type fault int

const (
	faultNone fault = iota
	faultDrop
	faultCorrupt
	faultDuplicate
	faultCloseWithoutEcho
)

// faultyServer serves an echo WebSocket that misbehaves once, as f says.
func faultyServer(t *testing.T, f fault) *httptest.Server {
	t.Helper()
	var conns atomic.Int64
	var handlers sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlers.Add(1)
		defer handlers.Done()
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		first := conns.Add(1) == 1
		ctx := context.Background()
		for n := 1; ; n++ {
			typ, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			echoes := [][]byte{msg}
			if first && n == 3 {
				switch f {
				case faultDrop:
					echoes = nil
				case faultCorrupt:
					msg[len(msg)-1]++
				case faultDuplicate:
					echoes = append(echoes, msg)
				case faultCloseWithoutEcho:
					_ = c.Close(websocket.StatusServiceRestart, "restart")
					return
				}
			}
			for _, e := range echoes {
				if err := c.Write(ctx, typ, e); err != nil {
					return
				}
			}
		}
	}))
	t.Cleanup(func() {
		srv.Close()
		handlers.Wait()
	})
	return srv
}

func TestPopulationChecksEchoes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		f           fault
		maxInFlight int
		want        Stats
	}{
		{name: "faithful", f: faultNone, want: Stats{Clients: 1, Connected: 1}},
		{name: "dropped", f: faultDrop, want: Stats{Clients: 1, Connected: 1, Lost: 1}},
		// The corrupted echo does not count, so its message is lost too.
		{name: "corrupted", f: faultCorrupt, want: Stats{Clients: 1, Connected: 1, Lost: 1, Mismatched: 1}},
		{name: "duplicated", f: faultDuplicate, want: Stats{Clients: 1, Connected: 1, Mismatched: 1}},
		// With one message in flight the resend count is exact.
		{
			name: "closed before the echo", f: faultCloseWithoutEcho, maxInFlight: 1,
			want: Stats{Clients: 1, Connected: 1, Reconnects: 1, Resent: 1, ServiceRestarts: 1},
		},
		// Nothing behind the dropped message shows the gap, so the client
		// times out, reconnects and sends it again.
		{
			name: "dropped with nothing behind", f: faultDrop, maxInFlight: 1,
			want: Stats{Clients: 1, Connected: 1, Reconnects: 1, Resent: 1, EchoTimeouts: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := faultyServer(t, tt.f)
			pop := runPopulation(t, "ws"+strings.TrimPrefix(srv.URL, "http"), PopulationOptions{
				Interval:    5 * time.Millisecond,
				MaxInFlight: tt.maxInFlight,
				EchoTimeout: 500 * time.Millisecond,
			})
			got := await(t, pop, 5*time.Second, "ten echoes", func(s Stats) bool {
				return s.Messages >= 10 && s.Connected == 1
			})
			got.Messages, got.LongestDisconnect, got.disconnected = 0, 0, nil
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(Stats{})); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPopulationBindsLocalAddrs(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var sources []string
	var handlers sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlers.Add(1)
		defer handlers.Done()
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		mu.Lock()
		sources = append(sources, host)
		mu.Unlock()
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(context.Background())
			if err != nil {
				return
			}
			if err := c.Write(context.Background(), typ, msg); err != nil {
				return
			}
		}
	}))
	t.Cleanup(func() {
		srv.Close()
		handlers.Wait()
	})
	pop := runPopulation(t, "ws"+strings.TrimPrefix(srv.URL, "http"), PopulationOptions{
		Clients:    4,
		LocalAddrs: []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")},
	})
	await(t, pop, 5*time.Second, "clients connected", func(s Stats) bool { return s.Connected == 4 })

	mu.Lock()
	got := slices.Sorted(slices.Values(sources))
	mu.Unlock()
	want := []string{"127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("source addresses (-want +got):\n%s", diff)
	}
}

func TestPopulationCountsDisconnectedClients(t *testing.T) {
	t.Parallel()
	// Nothing listens on a port just released.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	pop := runPopulation(t, "ws://"+addr+"/", PopulationOptions{Clients: 3})
	s := await(t, pop, 5*time.Second, "failed attempts", func(s Stats) bool {
		return s.DialFailures >= 6 && s.ClientsDisconnectedOver(50*time.Millisecond) == 3
	})
	if s.Connected != 0 || s.Reconnects != 0 {
		t.Errorf("Connected = %d, Reconnects = %d, want 0", s.Connected, s.Reconnects)
	}
	if s.LongestDisconnect != 0 {
		t.Errorf("LongestDisconnect = %v, want 0: no client has lost a connection", s.LongestDisconnect)
	}
}
