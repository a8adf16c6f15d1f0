package runtime

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/hafeed/hafeed/agent/config"
	"github.com/hafeed/hafeed/haproxy"
)

// TestSessionCloserClosesOnlyThisHost lists the sessions of two servers and
// closes through one endpoint only those of this host's; a second close
// that finds the closer busy until its deadline gives up.
func TestSessionCloserClosesOnlyThisHost(t *testing.T) {
	t.Parallel()
	f := startFakeRuntime(t)
	f.setServers([3]string{"ws1", "127.0.0.2", "0"}, [3]string{"ws2", "192.0.2.7", "0"})
	f.mu.Lock()
	f.sessions = []string{
		"0x1: proto=tcpv4 src=127.0.0.1:1 fe=fe be=ws srv=ws1 ts=00 age=2s",
		"0x2: proto=tcpv4 src=127.0.0.1:2 fe=fe be=ws srv=ws2 ts=00 age=1h",
		"0x3: proto=tcpv4 src=127.0.0.1:3 fe=fe be=ws srv=ws1 ts=00 age=5m3s",
		"0x4: proto=tcpv4 src=127.0.0.1:4 fe=fe be=ws srv=ws1 ts=00 age=1m",
	}
	f.mu.Unlock()
	set, err := NewSet([]config.HAProxyConfig{{Runtime: "unix://" + f.path}}, EndpointOptions{
		Ports:    func() []uint16 { return []uint16{8080} },
		Wanted:   func() Desired { return Desired{Admin: haproxy.AdminReady, Gen: 1} },
		ListenIP: netip.MustParseAddr("127.0.0.2"),
	}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := set.Endpoints()[0].sync(ctx, true); err != nil {
		t.Fatal(err)
	}
	c := set.Closer()
	n, err := c.Close(ctx, 2, "rebalance")
	if err != nil || n != 2 {
		t.Fatalf("Close(2) = %d, %v; want 2", n, err)
	}
	if n, err := c.Close(ctx, 5, "rebalance"); err != nil || n != 1 {
		t.Fatalf("Close(5) = %d, %v; want the 1 left of this host's 3", n, err)
	}
	f.mu.Lock()
	got := slices.Clone(f.shutdowns)
	f.mu.Unlock()
	if !slices.Equal(got, []string{"0x3", "0x4", "0x1"}) {
		t.Errorf("shut down %q, want ws1's sessions oldest first: 0x3, 0x4, 0x1", got)
	}

	// Another close holds the closer: this one gives up at its deadline.
	c.turn <- struct{}{}
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if _, err := c.Close(short, 1, "drain"); !errors.Is(err, ErrCloserBusy) {
		t.Errorf("Close while busy = %v, want ErrCloserBusy", err)
	}
	<-c.turn
}
