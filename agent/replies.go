package agent

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/haproxy"
)

// peerTTL is how long an address that polled counts as an HAProxy peer
// that must hear "ready" when hafeed leaves drain or maint.
const peerTTL = time.Minute

// forgetAfter is how long a peer that stopped polling is remembered, with
// its poll count, while the table has room.
const forgetAfter = 10 * peerTTL

// maxPeers bounds the peer table: past it, new addresses still get their
// reply but are not tracked. Expired entries are dropped as polls come in.
const maxPeers = 1024

// minAgentInter is the shortest interval between polls from one address
// that looks like HAProxy's agent-check (agent-inter) rather than a burst
// of connections.
const minAgentInter = 50 * time.Millisecond

// sharingPolls is how many polls at an agent-check cadence make an address
// count as an HAProxy sharing maxconn.
const sharingPolls = 3

// readyServings is how many replies with "ready" each peer address must get
// before the announcement ends: two, so that two HAProxy instances behind one
// address (same agent-inter, interleaved polls) both get it.
const readyServings = 2

// replyBook holds the prepared agent-check replies and the HAProxy peers
// that poll them. The agent-check server asks it for a reply per connection;
// the agent loop updates it. It does no I/O and no computing on the reply
// path: a map update under a mutex and a prepared byte slice.
type replyBook struct {
	now          func() time.Time
	readyTimeout time.Duration

	mu        sync.Mutex
	reply     haproxy.Reply
	line      []byte // reply without "ready"
	readyLine []byte // reply with "ready", while announcing
	announce  bool
	deadline  time.Time
	peers     map[netip.Addr]*peerInfo
	// peerMaxconn is the maxconn the reply to a peer carries instead of
	// the reply's own (its source's ports running out); peerLines are
	// those replies, plain and with "ready".
	peerMaxconn map[netip.Addr]int
	// peerWeight is the weight the reply to a peer carries instead of the
	// reply's own: a line that takes no more connections (lineWeights).
	peerWeight map[netip.Addr]int
	peerLines  map[netip.Addr][2][]byte
	pruned     time.Time // when expired peers were last dropped
	// announced receives a value each time an announcement ends, so that the
	// agent persists it outside the reply path.
	announced chan struct{}
}

type peerInfo struct {
	firstPoll   time.Time
	lastPoll    time.Time
	polls       uint64
	readyServed int
}

func newReplyBook(now func() time.Time, readyTimeout time.Duration) *replyBook {
	b := &replyBook{
		now:          now,
		readyTimeout: readyTimeout,
		peers:        map[netip.Addr]*peerInfo{},
		announced:    make(chan struct{}, 1),
	}
	b.set(haproxy.Reply{Admin: haproxy.AdminReady})
	return b
}

// AgentReply implements haproxy.ReplySource.
func (b *replyBook) AgentReply(peer netip.Addr) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	p := b.peers[peer]
	if p == nil {
		switch {
		case len(b.peers) >= maxPeers:
			b.prune(now, peerTTL)
		case now.Sub(b.pruned) >= peerTTL:
			b.prune(now, forgetAfter)
		}
		if len(b.peers) < maxPeers {
			p = &peerInfo{firstPoll: now}
			b.peers[peer] = p
		}
	}
	if p == nil {
		p = &peerInfo{} // untracked: the table is full of live peers
	}
	p.lastPoll = now
	p.polls++
	plain, ready := b.line, b.readyLine
	if l, ok := b.peerLines[peer]; ok {
		plain, ready = l[0], l[1]
	}
	if !b.announcing(now) {
		return plain
	}
	p.readyServed++
	line := ready
	if b.everyPeerHeardReady(now) {
		b.endAnnounce()
	}
	return line
}

// announcing ends an announcement past its deadline and says whether one
// is still running. b.mu must be held.
func (b *replyBook) announcing(now time.Time) bool {
	if b.announce && now.After(b.deadline) {
		b.endAnnounce()
	}
	return b.announce
}

func (b *replyBook) everyPeerHeardReady(now time.Time) bool {
	for _, p := range b.peers {
		if now.Sub(p.lastPoll) < peerTTL && p.readyServed < readyServings {
			return false
		}
	}
	return true
}

func (b *replyBook) endAnnounce() {
	b.announce = false
	select {
	case b.announced <- struct{}{}:
	default:
	}
}

// SetWeight updates the load part of the reply; weight 0 leaves it out.
func (b *replyBook) SetWeight(weightPercent, maxconn int, sendMaxconn bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.reply
	r.WeightPercent, r.Maxconn, r.SendMaxconn = weightPercent, maxconn, sendMaxconn
	b.set(r)
}

// SetAdmin updates the admin state. announceReady starts sending "ready"
// to every peer until each has heard it or readyTimeout passes.
func (b *replyBook) SetAdmin(admin haproxy.Admin, announceReady bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.reply
	r.Admin = admin
	b.set(r)
	b.announce = announceReady && admin == haproxy.AdminReady
	if b.announce {
		b.deadline = b.now().Add(b.readyTimeout)
		for _, p := range b.peers {
			p.readyServed = 0
		}
	}
}

// Expect adds peers that must hear "ready" although they have not polled
// this process yet: the HAProxies that polled before a restart.
func (b *replyBook) Expect(peers []netip.Addr) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	for _, addr := range peers {
		if b.peers[addr] == nil && len(b.peers) < maxPeers {
			b.peers[addr] = &peerInfo{firstPoll: now, lastPoll: now}
		}
	}
}

// prune drops the peers that have not polled within age. b.mu must be
// held.
func (b *replyBook) prune(now time.Time, age time.Duration) {
	b.pruned = now
	for addr, p := range b.peers {
		if now.Sub(p.lastPoll) >= age {
			delete(b.peers, addr)
		}
	}
}

// SharingPeers counts the addresses that poll like HAProxy's agent-check:
// at least sharingPolls polls, no closer together on average than
// minAgentInter, the last one within a few of its intervals. Bursts of
// connections from one address and addresses that polled once do not
// count.
func (b *replyBook) SharingPeers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	n := 0
	for _, p := range b.peers {
		if p.polls < sharingPolls {
			continue
		}
		inter := p.lastPoll.Sub(p.firstPoll) / time.Duration(p.polls-1)
		if inter >= minAgentInter && now.Sub(p.lastPoll) <= 3*inter+time.Second && now.Sub(p.lastPoll) < peerTTL {
			n++
		}
	}
	return n
}

// RecentPeers lists the addresses that polled within peerTTL.
func (b *replyBook) RecentPeers() []netip.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	var out []netip.Addr
	for addr, p := range b.peers {
		if now.Sub(p.lastPoll) < peerTTL {
			out = append(out, addr)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// SetReadyTimeout changes how long later announcements last.
func (b *replyBook) SetReadyTimeout(d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.readyTimeout = d
}

func (b *replyBook) set(r haproxy.Reply) {
	b.reply = r
	b.line, b.readyLine = lines(r)
	b.peerLines = make(map[netip.Addr][2][]byte, len(b.peerMaxconn)+len(b.peerWeight))
	for peer, n := range b.peerMaxconn {
		pr := r
		if !pr.SendMaxconn || pr.Maxconn <= 0 || (n > 0 && n < pr.Maxconn) {
			pr.Maxconn = n
		}
		pr.SendMaxconn = true
		if w, ok := b.peerWeight[peer]; ok && pr.WeightPercent > 0 {
			pr.WeightPercent = w
		}
		plain, ready := lines(pr)
		b.peerLines[peer] = [2][]byte{plain, ready}
	}
	for peer, w := range b.peerWeight {
		if _, done := b.peerMaxconn[peer]; done || r.WeightPercent <= 0 {
			continue
		}
		pr := r
		pr.WeightPercent = w
		plain, ready := lines(pr)
		b.peerLines[peer] = [2][]byte{plain, ready}
	}
}

// lines are r's reply line without and with "ready".
func lines(r haproxy.Reply) (plain, ready []byte) {
	r.AnnounceReady = false
	plain = []byte(r.Line())
	r.AnnounceReady = true
	return plain, []byte(r.Line())
}

// SetPeerMaxconn sets the maxconn the replies to some peers carry instead
// of the reply's own: the smaller of the two, and 0 (no limit) only when
// the reply has none. A peer once listed should stay listed (with 0 to
// lift its limit): HAProxy keeps a maxconn until told otherwise.
func (b *replyBook) SetPeerMaxconn(caps map[netip.Addr]int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.peerMaxconn = maps.Clone(caps)
	b.set(b.reply)
}

// SetPeerWeights sets the weight the replies to some peers carry instead
// of the reply's own; nil: none.
func (b *replyBook) SetPeerWeights(weights map[netip.Addr]int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if maps.Equal(b.peerWeight, weights) {
		return
	}
	b.peerWeight = maps.Clone(weights)
	b.set(b.reply)
}

// Current is the reply a new peer would get now, and whether "ready" is
// still being announced.
func (b *replyBook) Current() (line string, announcing bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.announcing(b.now()) {
		return string(b.readyLine), true
	}
	return string(b.line), false
}

// Peers lists the addresses that polled within peerTTL, and forgets those
// silent for forgetAfter.
func (b *replyBook) Peers() []control.PeerStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.prune(now, forgetAfter)
	var out []control.PeerStatus
	for addr, p := range b.peers {
		if now.Sub(p.lastPoll) < peerTTL {
			out = append(out, control.PeerStatus{Addr: addr.String(), LastPoll: p.lastPoll, Polls: p.polls})
		}
	}
	slices.SortFunc(out, func(a, b control.PeerStatus) int { return strings.Compare(a.Addr, b.Addr) })
	return out
}
