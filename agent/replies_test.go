package agent

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/haproxy"
	"github.com/hafeed/hafeed/internal/testutil"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

const (
	peerA = "192.0.2.1"
	peerB = "192.0.2.2"
	peerC = "2001:db8::3"
)

// poll is one agent-check connection from peer.
func poll(t *testing.T, b *replyBook, peer, want string) {
	t.Helper()
	if got := string(b.AgentReply(netip.MustParseAddr(peer))); got != want {
		t.Errorf("reply to %s = %q, want %q", peer, got, want)
	}
}

// wantCurrent checks what a new peer would get and whether "ready" is
// still announced.
func wantCurrent(t *testing.T, b *replyBook, wantLine string, wantAnnouncing bool) {
	t.Helper()
	line, announcing := b.Current()
	if line != wantLine || announcing != wantAnnouncing {
		t.Errorf("Current() = %q, %t; want %q, %t", line, announcing, wantLine, wantAnnouncing)
	}
}

// wantAnnounced checks whether the end of an announcement was signalled,
// consuming the signal.
func wantAnnounced(t *testing.T, b *replyBook, want bool) {
	t.Helper()
	select {
	case <-b.announced:
		if !want {
			t.Error("end of the ready announcement signalled, want no signal yet")
		}
	default:
		if want {
			t.Error("end of the ready announcement not signalled")
		}
	}
}

func TestReplyBookSteady(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	b := newReplyBook(clk.Now, 30*time.Second)
	poll(t, b, peerA, "up\n")
	b.SetWeight(50, 0, false)
	for range 5 {
		for _, p := range []string{peerA, peerB, peerC} {
			poll(t, b, p, "up 50%\n")
		}
		clk.Advance(time.Second)
	}
	b.SetWeight(120, 40, false)
	poll(t, b, peerA, "up 120% maxconn:40\n")
	wantCurrent(t, b, "up 120% maxconn:40\n", false)
	wantAnnounced(t, b, false)
}

func TestReplyBookAdminLines(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		admin          haproxy.Admin
		announce       bool
		want           string
		wantAnnouncing bool
	}{
		{name: "ready", admin: haproxy.AdminReady, want: "up 40%\n"},
		{name: "ready announced", admin: haproxy.AdminReady, announce: true, want: "ready up 40%\n", wantAnnouncing: true},
		{name: "drain", admin: haproxy.AdminDrain, want: "drain up 40%\n"},
		{name: "drain never announces", admin: haproxy.AdminDrain, announce: true, want: "drain up 40%\n"},
		{name: "maint", admin: haproxy.AdminMaint, want: "maint\n"},
		{name: "maint never announces", admin: haproxy.AdminMaint, announce: true, want: "maint\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newReplyBook(newFakeClock().Now, 30*time.Second)
			b.SetWeight(40, 0, false)
			b.SetAdmin(tt.admin, tt.announce)
			wantCurrent(t, b, tt.want, tt.wantAnnouncing)
			poll(t, b, peerA, tt.want)
		})
	}
}

func TestReplyBookAnnouncesUntilEveryPeerHeardReadyTwice(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	b := newReplyBook(clk.Now, 30*time.Second)
	b.SetWeight(50, 0, false)
	b.SetAdmin(haproxy.AdminDrain, false)
	poll(t, b, peerA, "drain up 50%\n")
	poll(t, b, peerB, "drain up 50%\n")

	clk.Advance(time.Second)
	b.SetAdmin(haproxy.AdminReady, true)
	wantCurrent(t, b, "ready up 50%\n", true)
	poll(t, b, peerA, "ready up 50%\n")
	poll(t, b, peerB, "ready up 50%\n")
	poll(t, b, peerA, "ready up 50%\n")
	poll(t, b, peerA, "ready up 50%\n") // A is done; B has heard it once
	wantCurrent(t, b, "ready up 50%\n", true)
	wantAnnounced(t, b, false)

	poll(t, b, peerB, "ready up 50%\n") // the last reply with ready
	wantCurrent(t, b, "up 50%\n", false)
	wantAnnounced(t, b, true)

	poll(t, b, peerA, "up 50%\n")
	poll(t, b, peerB, "up 50%\n")
	wantAnnounced(t, b, false)
}

func TestReplyBookAnnounceWithNoPeersYet(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	b := newReplyBook(clk.Now, 30*time.Second)
	b.SetAdmin(haproxy.AdminReady, true)
	wantCurrent(t, b, "ready up\n", true)
	poll(t, b, peerC, "ready up\n")
	wantAnnounced(t, b, false)
	poll(t, b, peerC, "ready up\n")
	wantAnnounced(t, b, true)
	poll(t, b, peerC, "up\n")
}

func TestReplyBookAnnounceEndsAtReadyTimeout(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	b := newReplyBook(clk.Now, 30*time.Second)
	b.SetWeight(60, 0, false)
	poll(t, b, peerA, "up 60%\n")
	poll(t, b, peerB, "up 60%\n")
	b.SetAdmin(haproxy.AdminReady, true)

	// B polled recently but never polls again, so A keeps hearing ready
	// until the timeout; B's last poll is still within peerTTL then.
	for range 30 {
		clk.Advance(time.Second)
		poll(t, b, peerA, "ready up 60%\n")
	}
	wantAnnounced(t, b, false)
	wantCurrent(t, b, "ready up 60%\n", true)

	clk.Advance(time.Second)
	poll(t, b, peerA, "up 60%\n")
	wantAnnounced(t, b, true)
	wantCurrent(t, b, "up 60%\n", false)
	poll(t, b, peerB, "up 60%\n")
}

func TestReplyBookDoesNotWaitForPeerOlderThanTTL(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	b := newReplyBook(clk.Now, 10*time.Minute)
	poll(t, b, peerA, "up\n") // an HAProxy that has since gone away
	clk.Advance(peerTTL + time.Second)

	b.SetAdmin(haproxy.AdminReady, true)
	poll(t, b, peerB, "ready up\n")
	poll(t, b, peerB, "ready up\n")
	wantAnnounced(t, b, true)
	poll(t, b, peerB, "up\n")
}

func TestReplyBookStopsWaitingForPeerThatGoesQuiet(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	b := newReplyBook(clk.Now, 10*time.Minute)
	poll(t, b, peerA, "up\n")
	poll(t, b, peerB, "up\n")
	b.SetAdmin(haproxy.AdminReady, true)

	for range 3 {
		clk.Advance(time.Second)
		poll(t, b, peerA, "ready up\n")
	}
	wantAnnounced(t, b, false) // B polled 3s ago and has not heard ready

	// B last polled just under peerTTL ago: still waited for.
	clk.Advance(peerTTL - 4*time.Second)
	poll(t, b, peerA, "ready up\n")
	wantAnnounced(t, b, false)

	// Now B's last poll is older than peerTTL.
	clk.Advance(2 * time.Second)
	poll(t, b, peerA, "ready up\n")
	wantAnnounced(t, b, true)
	poll(t, b, peerA, "up\n")
}

func TestReplyBookSetWeightKeepsAnnouncement(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	b := newReplyBook(clk.Now, 30*time.Second)
	b.SetWeight(50, 0, false)
	b.SetAdmin(haproxy.AdminReady, true)
	poll(t, b, peerA, "ready up 50%\n")

	b.SetWeight(70, 100, false)
	wantCurrent(t, b, "ready up 70% maxconn:100\n", true)
	poll(t, b, peerA, "ready up 70% maxconn:100\n")
	wantAnnounced(t, b, true)
	poll(t, b, peerA, "up 70% maxconn:100\n")
}

func TestReplyBookDrainCancelsAnnouncementAndReadyRestartsIt(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	b := newReplyBook(clk.Now, 30*time.Second)
	b.SetAdmin(haproxy.AdminReady, true)
	poll(t, b, peerA, "ready up\n")

	b.SetAdmin(haproxy.AdminDrain, false)
	wantCurrent(t, b, "drain up\n", false)
	poll(t, b, peerA, "drain up\n")
	poll(t, b, peerA, "drain up\n")

	// A fresh announcement: A's earlier ready no longer counts, and the
	// deadline starts again.
	clk.Advance(25 * time.Second)
	b.SetAdmin(haproxy.AdminReady, true)
	poll(t, b, peerA, "ready up\n")
	clk.Advance(25 * time.Second)
	wantAnnounced(t, b, false)
	poll(t, b, peerA, "ready up\n")
	wantAnnounced(t, b, true)
	poll(t, b, peerA, "up\n")
}

func TestReplyBookSetReadyTimeout(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	b := newReplyBook(clk.Now, time.Hour)
	poll(t, b, peerA, "up\n")
	poll(t, b, peerB, "up\n")
	b.SetReadyTimeout(5 * time.Second)
	b.SetAdmin(haproxy.AdminReady, true)
	clk.Advance(6 * time.Second)
	poll(t, b, peerA, "up\n")
	wantAnnounced(t, b, true)
}

func TestReplyBookPeers(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	b := newReplyBook(clk.Now, 30*time.Second)
	start := clk.Now()

	poll(t, b, peerA, "up\n")
	poll(t, b, peerA, "up\n")
	clk.Advance(30 * time.Second)
	poll(t, b, peerC, "up\n")
	clk.Advance(10 * time.Second)
	poll(t, b, peerB, "up\n")
	want := []control.PeerStatus{
		{Addr: peerA, LastPoll: start, Polls: 2},
		{Addr: peerC, LastPoll: start.Add(30 * time.Second), Polls: 1},
		{Addr: peerB, LastPoll: start.Add(40 * time.Second), Polls: 1},
	}
	if diff := cmp.Diff(byAddr(want), b.Peers()); diff != "" {
		t.Errorf("Peers() (-want +got):\n%s", diff)
	}

	// A polled 65s ago: no longer listed.
	clk.Advance(25 * time.Second)
	want = want[1:]
	if diff := cmp.Diff(byAddr(want), b.Peers()); diff != "" {
		t.Errorf("Peers() after A went quiet (-want +got):\n%s", diff)
	}

	// A comes back before it is forgotten and keeps its count.
	poll(t, b, peerA, "up\n")
	want = append(want, control.PeerStatus{Addr: peerA, LastPoll: start.Add(65 * time.Second), Polls: 3})
	if diff := cmp.Diff(byAddr(want), b.Peers()); diff != "" {
		t.Errorf("Peers() after A polled again (-want +got):\n%s", diff)
	}

	// Long after the last poll every peer is forgotten, not only hidden.
	clk.Advance(10*peerTTL + time.Second)
	if got := b.Peers(); len(got) != 0 {
		t.Errorf("Peers() long after the last poll = %v, want none", got)
	}
	b.mu.Lock()
	remembered := len(b.peers)
	b.mu.Unlock()
	if remembered != 0 {
		t.Errorf("replyBook remembers %d peers long after their last poll, want 0", remembered)
	}
}

// TestReplyBookConcurrent exercises the reply path against updates; the race
// detector does the checking, plus every reply must be a whole line.
func TestReplyBookConcurrent(t *testing.T) {
	t.Parallel()
	b := newReplyBook(time.Now, time.Minute)
	valid := map[string]bool{}
	for _, admin := range []haproxy.Admin{haproxy.AdminReady, haproxy.AdminDrain} {
		for _, announce := range []bool{false, true} {
			for w := range 3 {
				valid[haproxy.Reply{Admin: admin, AnnounceReady: announce, WeightPercent: w}.Line()] = true
			}
		}
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	bad := make(chan string, 1)
	for i := range 4 {
		peer := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if line := string(b.AgentReply(peer)); !valid[line] {
					select {
					case bad <- line:
					default:
					}
				}
			}
		})
	}
	for i := range 1000 {
		b.SetWeight(i%3, 0, false)
		b.SetAdmin(haproxy.Admin(i%2), i%3 == 0)
		b.Current()
		b.Peers()
	}
	close(stop)
	testutil.Waited(t, &wg, waitLimit, "the readers to stop: a deadlock?")
	select {
	case line := <-bad:
		t.Errorf("AgentReply returned %q, not a reply the book was set to", line)
	default:
	}
}

// byAddr sorts peers as Peers lists them: by address text.
func byAddr(peers []control.PeerStatus) []control.PeerStatus {
	out := slices.Clone(peers)
	slices.SortFunc(out, func(a, b control.PeerStatus) int { return strings.Compare(a.Addr, b.Addr) })
	return out
}
