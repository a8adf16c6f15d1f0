package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
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
	set, ctx := syncedSet(t, f)
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

// TestSessionCloserListsOncePerRun closes one session at a time, seconds
// apart, as a drain at a low rate does: "show sess" is read once and the
// closes come from that list (issue 17, item 10: the whole list, 54 MB at
// 200,000 streams, was read again every second). A session that ended
// meanwhile is skipped; once the list runs out it is read again, and a
// list with none of this host's is not read again within a second.
func TestSessionCloserListsOncePerRun(t *testing.T) {
	t.Parallel()
	f := startFakeRuntime(t)
	f.setServers([3]string{"ws1", "127.0.0.2", "0"})
	f.mu.Lock()
	for i := range 4 {
		f.sessions = append(f.sessions, fmt.Sprintf("0x%d: proto=tcpv4 src=127.0.0.1:%d fe=fe be=ws srv=ws1 ts=00 age=%dm", i+1, i+1, 10-i))
	}
	f.mu.Unlock()
	set, ctx := syncedSet(t, f)
	c := set.Closer()
	clock := time.Now()
	c.now = func() time.Time { return clock }
	listings := func() int {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.listings
	}
	for i := range 3 {
		if n, err := c.Close(ctx, 1, "drain"); err != nil || n != 1 {
			t.Fatalf("close %d = %d, %v; want 1", i, n, err)
		}
		clock = clock.Add(2 * time.Second)
	}
	if got := listings(); got != 1 {
		t.Errorf("show sess read %d times for 3 closes of one, 2 s apart; want once", got)
	}
	// The last listed session ends by itself, and two new ones come.
	f.mu.Lock()
	f.sessions = []string{
		"0x5: proto=tcpv4 src=127.0.0.1:5 fe=fe be=ws srv=ws1 ts=00 age=1s",
		"0x6: proto=tcpv4 src=127.0.0.1:6 fe=fe be=ws srv=ws1 ts=00 age=2s",
	}
	f.gone = []string{"0x4"}
	f.mu.Unlock()
	if n, err := c.Close(ctx, 1, "drain"); err != nil || n != 1 {
		t.Fatalf("close after the list's last session ended = %d, %v; want 1 from a new list", n, err)
	}
	if got := listings(); got != 2 {
		t.Errorf("show sess read %d times, want 2: again once the first list ran out", got)
	}
	if n, err := c.Close(ctx, 5, "drain"); err != nil || n != 1 {
		t.Fatalf("Close(5) = %d, %v; want the 1 left", n, err)
	}
	f.mu.Lock()
	f.sessions = nil
	f.mu.Unlock()
	for range 3 {
		if _, err := c.Close(ctx, 1, "drain"); !errors.Is(err, ErrNoSessions) {
			t.Errorf("Close with none left = %v, want ErrNoSessions", err)
		}
	}
	if got := listings(); got != 3 {
		t.Errorf("show sess read %d times, want 3: one empty list stands for a second", got)
	}
}
