package agent

import (
	"errors"
	"maps"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/hafeed/hafeed/agent/config"
	"github.com/hafeed/hafeed/metrics"
)

// TestSourcePortsWarnCapAndRestore follows one local source through its
// range of 1,000 ports: logged once at 80%, its line capped at 900 from
// then on, and the cap lifted (to policy.maxconn) once it is back under;
// a remote source takes Linux's default range, and says so.
func TestSourcePortsWarnCapAndRestore(t *testing.T) {
	t.Parallel()
	sp := newSourcePorts()
	sp.localAddrs = func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("10.0.0.5")}, nil }
	sp.readRange = func(string) (config.PortRange, string, error) {
		return config.PortRange{Low: 59000, High: 59999}, "/proc/sys/net/ipv4/ip_local_port_range", nil
	}
	cfg := config.Default()
	cfg.Policy.Maxconn = 5000
	var logs strings.Builder
	log := zerolog.New(&logs)
	local, remote := netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("192.0.2.9")
	app := netip.MustParseAddrPort("10.0.0.5:8080")

	step := func(n int) (map[netip.Addr]int, bool) {
		return sp.update(cfg, map[metrics.Path]int{{Peer: local, Local: app}: n, {Peer: remote, Local: app}: 100}, log)
	}
	if caps, changed := step(500); changed || len(caps) != 0 {
		t.Errorf("at 50%%: caps %v (changed %v), want none", caps, changed)
	}
	caps, changed := step(850)
	if !changed || caps[local] != 900 || len(caps) != 1 {
		t.Errorf("at 85%%: caps %v (changed %v), want %s capped at 900", caps, changed, local)
	}
	step(880)
	if n := strings.Count(logs.String(), "holds 8"); n != 2-1 {
		t.Errorf("warnings logged %d times over two samples past 80%%, want once:\n%s", n, logs.String())
	}
	rows := sp.sources()
	if len(rows) != 2 || rows[0].Peer != "10.0.0.5" || rows[0].Local != "10.0.0.5:8080" || rows[0].Range != "59000-59999" || rows[0].RangeFrom != "/proc/sys/net/ipv4/ip_local_port_range" || rows[0].Maxconn != 900 {
		t.Errorf("rows %+v; want the local source first, with the range read here and its maxconn", rows)
	}
	if r := rows[1]; r.Range != "32768-60999" || !strings.Contains(r.RangeFrom, "not an address of this host") || r.Maxconn != 0 {
		t.Errorf("remote source's row %+v; want Linux's default range, saying why, no maxconn", r)
	}
	caps, changed = step(700) // under 90% of 80%: lifted
	if !changed || caps[local] != 5000 {
		t.Errorf("back at 70%%: caps %v (changed %v), want %s's cap restored to policy.maxconn 5000", caps, changed, local)
	}
	if !strings.Contains(logs.String(), "back under") {
		t.Errorf("no log of the source coming back under:\n%s", logs.String())
	}
	if _, changed := step(700); changed {
		t.Error("the caps changed with nothing new")
	}

	// A range set in the config wins, and a failing read falls back to
	// Linux's default, saying so.
	cfg.SourcePorts.Range = "1024-2047"
	if step(0); sp.sources()[0].RangeFrom != "source_ports.range" {
		t.Errorf("rows %+v: want the configured range", sp.sources())
	}
	cfg.SourcePorts.Range = ""
	sp.readRange = func(string) (config.PortRange, string, error) { return config.PortRange{}, "/p", errors.New("gone") }
	step(10)
	if rows := sp.sources(); !strings.Contains(rows[len(rows)-1].RangeFrom+rows[0].RangeFrom, "reading /p: gone") {
		t.Errorf("rows %+v: want the failed read named", rows)
	}
}

// TestSourcePortsPerPath checks that a source's range counts toward each
// address and port of this host apart, as the kernel counts it: a source
// reaching two application ports (a line each) holds a range's worth on
// each, and its lines are capped only when one of them reaches warn; and
// that a capped source whose connections are all gone gets its cap lifted.
func TestSourcePortsPerPath(t *testing.T) {
	t.Parallel()
	sp := newSourcePorts()
	sp.localAddrs = func() ([]netip.Addr, error) { return nil, nil }
	cfg := config.Default()
	cfg.SourcePorts.Range = "1000-1999"
	log := zerolog.Nop()
	src := netip.MustParseAddr("10.0.0.1")
	a, b := metrics.Path{Peer: src, Local: netip.MustParseAddrPort("10.0.0.5:8080")}, metrics.Path{Peer: src, Local: netip.MustParseAddrPort("10.0.0.5:8081")}

	// 1,400 from one source, 700 on each port: 70% of each path's range.
	if caps, _ := sp.update(cfg, map[metrics.Path]int{a: 700, b: 700}, log); len(caps) != 0 {
		t.Errorf("700 on each of two ports (1,400 from one source, 1,000 ports): caps %v, want none", caps)
	}
	if rows := sp.sources(); len(rows) != 2 || rows[0].Usage != 0.7 || rows[1].Usage != 0.7 {
		t.Errorf("rows %+v: want a row per port at 70%%", rows)
	}
	caps, _ := sp.update(cfg, map[metrics.Path]int{a: 850, b: 300}, log)
	if caps[src] != 900 {
		t.Errorf("850 on one port: caps %v, want the source's lines capped at 900", caps)
	}
	if rows := sp.sources(); rows[0].Local != "10.0.0.5:8080" || rows[0].Maxconn != 900 || rows[1].Maxconn != 900 {
		t.Errorf("rows %+v: want the busiest port first, both rows with the source's maxconn", rows)
	}
	if caps, changed := sp.update(cfg, nil, log); !changed || caps[src] != cfg.Policy.Maxconn {
		t.Errorf("no connections left: caps %v (changed %v), want the cap lifted to policy.maxconn", caps, changed)
	}
}

// TestRepliesCarryEachSourcesMaxconn checks that the reply to a capped
// source carries its maxconn, the smaller of its own and the overload
// guard's, while other sources get the plain reply.
func TestRepliesCarryEachSourcesMaxconn(t *testing.T) {
	t.Parallel()
	b := newReplyBook(newFakeClock().Now, 30*time.Second)
	b.SetWeight(80, 0, false)
	capped, other := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")
	b.SetPeerMaxconn(map[netip.Addr]int{capped: 900})
	if got := string(b.AgentReply(capped)); !strings.Contains(got, "maxconn:900") {
		t.Errorf("reply to the capped source %q, want maxconn:900", got)
	}
	if got := string(b.AgentReply(other)); strings.Contains(got, "maxconn") {
		t.Errorf("reply to another source %q, want no maxconn", got)
	}
	b.SetWeight(80, 600, true) // the overload guard's is smaller: it wins
	if got := string(b.AgentReply(capped)); !strings.Contains(got, "maxconn:600") {
		t.Errorf("reply with the overload guard at 600 %q, want maxconn:600", got)
	}
	b.SetWeight(80, 0, false)
	b.SetPeerMaxconn(map[netip.Addr]int{capped: 0}) // lifted
	if got := string(b.AgentReply(capped)); !strings.Contains(got, "maxconn:0") {
		t.Errorf("reply after the cap was lifted %q, want maxconn:0", got)
	}
}

// TestLineWeights checks how a host's weight is split among its lines
// when some of them are capped: the full lines' weights follow their part
// of the host's connections, and the others take the rest, so that
// leastconn fills them until the host's total, not theirs alone, matches
// the other hosts'.
func TestLineWeights(t *testing.T) {
	t.Parallel()
	a, b := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	for _, c := range []struct {
		name                string
		weight, lines, poll int
		full                map[netip.Addr]int
		total               int
		wantOthers          int
		wantPerPeer         map[netip.Addr]int
	}{
		{"one line", 80, 1, 1, map[netip.Addr]int{a: 900}, 1000, 80, nil},
		{"no line full", 100, 2, 2, nil, 1000, 50, nil},
		// One HAProxy, two lines: the full one holds 900 of 1,200.
		{"one of two full", 100, 2, 2, map[netip.Addr]int{a: 900}, 1200, 25, map[netip.Addr]int{a: 75}},
		// Just capped, at an equal split: nothing moves yet.
		{"capped at an equal split", 100, 2, 2, map[netip.Addr]int{a: 900}, 1800, 50, map[netip.Addr]int{a: 50}},
		// Two HAProxies of two lines each (4 sources), one line full with
		// 900 of the 2,400 here (1,200 each): the other three share the
		// rest of two hosts' worth of weight.
		{"two HAProxies", 100, 2, 4, map[netip.Addr]int{a: 900}, 2400, 42, map[netip.Addr]int{a: 75}},
		// Every polling source full: nothing to move the share to.
		{"all full", 100, 2, 2, map[netip.Addr]int{a: 900, b: 900}, 1800, 50, nil},
		{"no weight yet", 0, 2, 2, map[netip.Addr]int{a: 900}, 1200, 0, nil},
	} {
		others, perPeer := lineWeights(c.weight, c.lines, c.poll, c.full, c.total)
		if others != c.wantOthers || !maps.Equal(perPeer, c.wantPerPeer) {
			t.Errorf("%s: lineWeights = %d, %v; want %d, %v", c.name, others, perPeer, c.wantOthers, c.wantPerPeer)
		}
	}
}

// TestRepliesCarryPeerWeights checks that a peer's own weight replaces
// the reply's, alone or with its own maxconn, and that nil lifts it.
func TestRepliesCarryPeerWeights(t *testing.T) {
	t.Parallel()
	b := newReplyBook(newFakeClock().Now, 30*time.Second)
	b.SetWeight(25, 0, false)
	full, other := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")
	b.SetPeerWeights(map[netip.Addr]int{full: 75})
	if got := string(b.AgentReply(full)); !strings.HasPrefix(got, "up 75%") {
		t.Errorf("reply to the full line's source %q, want 75%%", got)
	}
	if got := string(b.AgentReply(other)); !strings.HasPrefix(got, "up 25%") {
		t.Errorf("reply to another source %q, want 25%%", got)
	}
	b.SetPeerMaxconn(map[netip.Addr]int{full: 900})
	if got := string(b.AgentReply(full)); !strings.HasPrefix(got, "up 75%") || !strings.Contains(got, "maxconn:900") {
		t.Errorf("reply to the capped source %q, want 75%% and maxconn:900", got)
	}
	b.SetPeerWeights(nil)
	if got := string(b.AgentReply(full)); !strings.HasPrefix(got, "up 25%") {
		t.Errorf("reply after the weights were lifted %q, want 25%%", got)
	}
}
