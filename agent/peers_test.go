package agent

import (
	"net/netip"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// addrN is the n-th address of 127.0.0.0/8 past 127.1.0.0.
func addrN(n int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, byte(1 + n>>16), byte(n >> 8), byte(n)})
}

// TestPeerTableBoundedAndSelfExpiring checks that the peer table neither
// grows past maxPeers nor keeps addresses that stopped polling, without
// anyone asking for the status (issue 11, item 12: 1M distinct peers took
// 126 MiB, pruned only by hafeed status).
func TestPeerTableBoundedAndSelfExpiring(t *testing.T) {
	t.Parallel()
	now := t0
	b := newReplyBook(func() time.Time { return now }, time.Minute)
	want := b.line
	for i := range 5 * maxPeers {
		if got := b.AgentReply(addrN(i)); string(got) != string(want) {
			t.Fatalf("poll %d got %q, want %q: a full table must still answer", i, got, want)
		}
	}
	if n := len(b.peers); n > maxPeers {
		t.Fatalf("peer table holds %d entries, want at most %d", n, maxPeers)
	}
	// A minute later a new address makes room by dropping those that
	// went quiet; ten minutes later the next poll forgets them all.
	now = now.Add(peerTTL + time.Second)
	b.AgentReply(netip.MustParseAddr("10.0.0.1"))
	if _, ok := b.peers[netip.MustParseAddr("10.0.0.1")]; !ok || len(b.peers) != 1 {
		t.Errorf("peer table holds %d entries a minute after the flood, want only the new address", len(b.peers))
	}
	for i := range 10 {
		b.AgentReply(addrN(i))
	}
	now = now.Add(forgetAfter)
	b.AgentReply(netip.MustParseAddr("10.0.0.2"))
	if n := len(b.peers); n != 1 {
		t.Errorf("peer table holds %d entries %v after the last poll, want 1", n, forgetAfter)
	}
}

// TestSharingPeersCountsOnlyAgentCheckPollers checks which addresses count
// as HAProxies sharing maxconn: those polling at an agent-check cadence,
// not addresses that connected once or in a burst (issue 11, item 12:
// 1,000 pollers cut the maxconn cap from 6000 to 6).
func TestSharingPeersCountsOnlyAgentCheckPollers(t *testing.T) {
	t.Parallel()
	now := t0
	b := newReplyBook(func() time.Time { return now }, time.Minute)
	haproxies := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")}
	burst := netip.MustParseAddr("10.9.9.9")
	for round := range 5 {
		for _, h := range haproxies {
			b.AgentReply(h)
		}
		for i := range 1000 { // a thousand addresses, each polling once
			b.AgentReply(addrN(round*1000 + i))
		}
		for range 100 { // one address, a hundred connections at once
			b.AgentReply(burst)
		}
		now = now.Add(2 * time.Second)
	}
	if got := b.SharingPeers(); got != len(haproxies) {
		t.Errorf("SharingPeers() = %d, want the %d HAProxies polling every 2s", got, len(haproxies))
	}
	// HAProxies that stop polling stop counting well before peerTTL.
	now = now.Add(10 * time.Second)
	if got := b.SharingPeers(); got != 0 {
		t.Errorf("SharingPeers() = %d 10s after the last poll every 2s, want 0", got)
	}
}

// TestPeerCountCapped checks that however many addresses poll at an
// agent-check cadence, maxconn is shared among at most maxSharingPeers.
func TestPeerCountCapped(t *testing.T) {
	t.Parallel()
	now := t0
	a := New(Options{Config: testConfig(t)})
	a.replies = newReplyBook(func() time.Time { return now }, time.Minute)
	for range 4 {
		for i := range 1000 {
			a.replies.AgentReply(addrN(i))
		}
		now = now.Add(time.Second)
	}
	if got := a.peerCount(); got != maxSharingPeers {
		t.Errorf("peerCount() with 1000 addresses polling every second = %d, want the cap %d", got, maxSharingPeers)
	}
}
