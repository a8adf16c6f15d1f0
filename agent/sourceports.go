package agent

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"

	"github.com/rs/zerolog"

	"github.com/hafeed/hafeed/agent/config"
	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/metrics"
)

// maxSourceRows bounds the sources status lists: the busiest ones.
const maxSourceRows = 8

// sourcePorts follows each HAProxy source address's use of its port range
// toward each address and port of this host: between one source address
// and one server ip:port there are only as many connections as the range
// holds, and past it HAProxy's connects fail. The sampling loop owns it
// (publish); status reads last.
type sourcePorts struct {
	// localAddrs lists this host's addresses; readRange reads
	// net.ipv4.ip_local_port_range. Tests replace them.
	localAddrs func() ([]netip.Addr, error)
	readRange  func(procRoot string) (config.PortRange, string, error)

	warned map[metrics.Path]bool
	// caps are the maxconn the replies to some sources carry: their cap
	// while a path of theirs is at or above warn, then the restored
	// maxconn, kept once set because HAProxy keeps a maxconn until told
	// otherwise.
	caps map[netip.Addr]int
	// full are the sources whose lines are capped now, with their
	// connections to this host: their lines take no more, and lineWeights
	// moves their share to the others.
	full map[netip.Addr]int
	last atomic.Pointer[[]control.SourcePortStatus]
}

func newSourcePorts() *sourcePorts {
	return &sourcePorts{localAddrs: hostAddrs, readRange: readLocalPortRange, warned: map[metrics.Path]bool{}, caps: map[netip.Addr]int{}, full: map[netip.Addr]int{}}
}

// update compares each path's connections with its source's range, logs
// the paths that reach warn (once each time), and says which maxconn the
// replies to sources carry; changed says whether those did change.
//
// A source's polls do not say which of its lines they are for when its
// lines reach this host on several ports, so its cap is its busiest
// path's: each line reaches one ip:port, and maxconn at cap × range keeps
// the busiest under its range while the others, under it already, lose
// nothing they could use.
func (sp *sourcePorts) update(cfg config.Config, paths map[metrics.Path]int, log zerolog.Logger) (caps map[netip.Addr]int, changed bool) {
	conf := cfg.SourcePorts
	var local []netip.Addr
	if conf.Range == "" && len(paths) > 0 {
		local, _ = sp.localAddrs()
	}
	prev := maps.Clone(sp.caps)
	busiest := map[netip.Addr]float64{}
	ranges := map[netip.Addr]config.PortRange{}
	totals := map[netip.Addr]int{}
	var rows []control.SourcePortStatus
	for path, n := range paths {
		r, from := sp.rangeOf(conf, cfg.Sources.ProcRoot, path.Peer, local)
		usage := float64(n) / float64(r.Size())
		busiest[path.Peer] = max(busiest[path.Peer], usage)
		ranges[path.Peer] = r
		totals[path.Peer] += n
		rows = append(rows, control.SourcePortStatus{Peer: path.Peer.String(), Local: path.Local.String(), Connections: n, Range: r.String(), RangeFrom: from, Usage: usage})
		switch {
		case usage >= conf.Warn && !sp.warned[path]:
			sp.warned[path] = true
			log.Warn().Str("peer", path.Peer.String()).Str("local", path.Local.String()).Int("connections", n).Str("range", r.String()).Str("range_from", from).Float64("usage", usage).
				Msgf("source %s holds %.0f%% of its %d source ports toward %s; past them HAProxy's connects fail: give this host more server lines (each with its own source address, or to another port of the application) or widen ip_local_port_range", path.Peer, 100*usage, r.Size(), path.Local)
		case usage < 0.9*conf.Warn && sp.warned[path]:
			delete(sp.warned, path)
			log.Info().Str("peer", path.Peer.String()).Str("local", path.Local.String()).Float64("usage", usage).
				Msgf("source %s is back under %.0f%% of its source ports toward %s", path.Peer, 100*conf.Warn, path.Local)
		}
	}
	// A capped source with no connections left is under its range too.
	for peer := range sp.caps {
		busiest[peer] += 0
	}
	for peer, usage := range busiest {
		switch {
		case usage >= conf.Warn && conf.Cap > 0:
			sp.caps[peer] = max(int(conf.Cap*float64(ranges[peer].Size())), 1)
			sp.full[peer] = totals[peer]
		case usage < 0.9*conf.Warn:
			if _, ok := sp.caps[peer]; ok {
				sp.caps[peer] = cfg.Policy.Maxconn // restored: 0 lifts the limit
			}
			delete(sp.full, peer)
		default:
			if _, ok := sp.full[peer]; ok {
				sp.full[peer] = totals[peer]
			}
		}
	}
	// Forgotten paths are gone: their warning with them.
	for path := range sp.warned {
		if _, ok := paths[path]; !ok {
			delete(sp.warned, path)
		}
	}
	for i := range rows {
		if peer, err := netip.ParseAddr(rows[i].Peer); err == nil {
			rows[i].Maxconn = sp.caps[peer]
		}
	}
	slices.SortFunc(rows, func(a, b control.SourcePortStatus) int {
		return cmp.Or(cmp.Compare(b.Usage, a.Usage), cmp.Compare(a.Peer, b.Peer), cmp.Compare(a.Local, b.Local))
	})
	rows = rows[:min(len(rows), maxSourceRows)]
	sp.last.Store(&rows)
	return maps.Clone(sp.caps), !maps.Equal(prev, sp.caps)
}

// setWeights records the weights the replies to capped sources carry, for
// status.
func (sp *sourcePorts) setWeights(weights map[netip.Addr]int) {
	p := sp.last.Load()
	if p == nil {
		return
	}
	rows := slices.Clone(*p)
	for i := range rows {
		rows[i].WeightPercent = 0
		if peer, err := netip.ParseAddr(rows[i].Peer); err == nil {
			rows[i].WeightPercent = weights[peer]
		}
	}
	sp.last.Store(&rows)
}

// capped lists the sources whose lines are capped now, with their
// connections to this host.
func (sp *sourcePorts) capped() map[netip.Addr]int { return maps.Clone(sp.full) }

// lineWeights splits a host's weight among its server lines: equally, as
// splitWeight does, while every line takes connections; when the lines of
// some sources are capped (full), so that those take no more, their share
// goes to the others, so that the host as a whole keeps its share.
//
// HAProxy's leastconn fills each line until its connections over its
// weight match the other servers'. A full line's weight is its part of its
// HAProxy's connections to this host, weight × connections / per-HAProxy
// total, and the lines that still take connections share the rest: their
// connections then grow until the host's total, not their own, matches
// the other hosts'. polling is the number of sources polling this agent,
// lines per HAProxy; without knowing which sources are one HAProxy's, the
// HAProxies are taken alike (polling/lines of them, each with total/
// their number of connections here). others is the weight of the replies
// to the sources not listed in full, perPeer those to the full ones.
func lineWeights(weight, lines, polling int, full map[netip.Addr]int, total int) (others int, perPeer map[netip.Addr]int) {
	if weight <= 0 || lines <= 1 || len(full) == 0 || total <= 0 {
		return splitWeight(weight, lines), nil
	}
	free := polling - len(full)
	if free <= 0 {
		return splitWeight(weight, lines), nil
	}
	haproxies := max(1, (polling+lines/2)/lines)
	perPeer = make(map[netip.Addr]int, len(full))
	used := 0
	for peer, n := range full {
		w := min(max((weight*haproxies*n+total/2)/total, 1), weight)
		perPeer[peer] = w
		used += w
	}
	others = min(max((weight*haproxies-used+free/2)/free, 1), weight)
	return others, perPeer
}

// rangeOf is peer's port range and where it was taken from.
func (sp *sourcePorts) rangeOf(conf config.SourcePortsConfig, procRoot string, peer netip.Addr, local []netip.Addr) (config.PortRange, string) {
	if conf.Range != "" {
		if r, err := config.ParsePortRange(conf.Range); err == nil {
			return r, "source_ports.range"
		}
	}
	if peer.IsLoopback() || slices.Contains(local, peer) {
		r, path, err := sp.readRange(procRoot)
		if err == nil {
			return r, path
		}
		return config.LinuxDefaultPortRange, fmt.Sprintf("Linux's default (reading %s: %v)", path, err)
	}
	return config.LinuxDefaultPortRange, "Linux's default: the source is not an address of this host (set source_ports.range to its HAProxy host's range)"
}

// sources is the last update's rows, the busiest first.
func (sp *sourcePorts) sources() []control.SourcePortStatus {
	if p := sp.last.Load(); p != nil {
		return *p
	}
	return nil
}

// readLocalPortRange reads net.ipv4.ip_local_port_range under procRoot.
func readLocalPortRange(procRoot string) (config.PortRange, string, error) {
	path := filepath.Join(procRoot, "sys/net/ipv4/ip_local_port_range")
	b, err := os.ReadFile(path)
	if err != nil {
		return config.PortRange{}, path, err
	}
	r, err := config.ParsePortRange(string(b))
	return r, path, err
}

// hostAddrs lists this host's addresses.
func hostAddrs() ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out, nil
}
