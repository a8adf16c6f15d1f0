package main

import (
	"fmt"
	"math"
)

// The ceilings the plan is sized against.
const (
	// haproxyFill is the share of its most that each HAProxy of the farm
	// is planned to hold, so that the kernel's SO_REUSEPORT hash, which
	// does not know which one is full, never sends a client to a full one.
	haproxyFill = 0.85
	// perClientProc and perAppProc bound the sockets of one client or
	// application process, under the 20,000 descriptors a process may
	// hold here.
	perClientProc = 12500
	perAppProc    = 12000
)

// plan is how the farm is laid out for a number of connections.
type plan struct {
	Conns int `json:"conns"`
	// Hosts serve at the start; one more, the spare, joins at the end.
	Hosts int `json:"hosts"`
	// NoFile is the descriptor limit of every process.
	NoFile int `json:"nofile"`
	// Reserved is what HAProxy needs beyond two descriptors a connection.
	Reserved int `json:"haproxy_reserved_fds"`
	// MaxPerHAProxy is the most connections one HAProxy can hold under
	// NoFile: its maxconn.
	MaxPerHAProxy int `json:"max_per_haproxy"`
	HAProxies     int `json:"haproxies"`
	// AppProcs is each host's application processes, on one port.
	AppProcs    int `json:"app_procs"`
	ClientProcs int `json:"client_procs"`
	// PortRange is net.ipv4.ip_local_port_range.
	PortLow  int `json:"port_low"`
	PortHigh int `json:"port_high"`
}

// newPlan sizes the farm: as many HAProxies as hold conns at haproxyFill
// of their most (haproxies overrides it when above 0), and enough
// application and client processes for the descriptor limit. HAProxy needs
// two descriptors a connection and reserved more (its listeners, stats
// socket, checks): its ulimit-n is 2 × maxconn + reserved.
func newPlan(conns, hosts, haproxies, nofile, reserved, portLow, portHigh int) (plan, error) {
	p := plan{Conns: conns, Hosts: hosts, NoFile: nofile, Reserved: reserved, PortLow: portLow, PortHigh: portHigh}
	p.MaxPerHAProxy = (nofile - reserved) / 2
	if p.MaxPerHAProxy < 100 {
		return p, fmt.Errorf("a descriptor limit of %d leaves HAProxy no room", nofile)
	}
	p.HAProxies = haproxies
	if p.HAProxies <= 0 {
		p.HAProxies = int(math.Ceil(float64(conns) / (haproxyFill * float64(p.MaxPerHAProxy))))
	}
	if float64(conns)/float64(p.HAProxies) > haproxyFill*float64(p.MaxPerHAProxy) {
		return p, fmt.Errorf("%d HAProxies cannot hold %d connections (%d each at most, planned at %.0f%%)",
			p.HAProxies, conns, p.MaxPerHAProxy, haproxyFill*100)
	}
	// After the drain, hosts-1 hosts hold everything.
	p.AppProcs = max(2, ceilDiv(p.peakPerHost(), perAppProc))
	p.ClientProcs = max(2, ceilDiv(conns, perClientProc))
	if p.HAProxies > 250 || p.ClientProcs > 250 {
		return p, fmt.Errorf("%d HAProxies and %d client processes do not fit the address plan", p.HAProxies, p.ClientProcs)
	}
	return p, nil
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// peakPerHost is the most one host holds: while one of the hosts is
// drained, the others hold every connection.
func (p plan) peakPerHost() int { return ceilDiv(p.Conns, max(1, p.Hosts-1)) }

// ephemeralPorts is the size of the source port range.
func (p plan) ephemeralPorts() int { return p.PortHigh - p.PortLow + 1 }

// clientSource is the source address of client process i.
func clientSource(i int) string { return fmt.Sprintf("127.0.1.%d", 10+i) }

// haproxySource is the source address of HAProxy i's server lines.
func haproxySource(i int) string { return fmt.Sprintf("127.0.2.%d", 1+i) }

// probeSource is the source address of the single HAProxy probed alone.
const probeSource = "127.0.3.1"

// frontendIP is the address every HAProxy's frontend binds, with
// SO_REUSEPORT (HAProxy's default).
const frontendIP = "127.0.1.1"

// appIP is the address of every host's application, which the hosts tell
// apart by port.
const appIP = "127.0.0.1"

// portPair is one (source address, destination) pair and the most
// connections it carries at once: each must stay within the source port
// range, as a connection is told apart by its source port alone.
type portPair struct {
	What  string `json:"what"`
	Peak  int    `json:"peak"`
	Range int    `json:"range"`
}

// Share is the pair's peak over the range.
func (pp portPair) Share() float64 { return float64(pp.Peak) / float64(pp.Range) }

// portPairs are the pairs of the farm at their busiest, and the layout it
// avoids: every HAProxy connecting to the hosts from 127.0.0.1.
func (p plan) portPairs() []portPair {
	r := p.ephemeralPorts()
	perClient := ceilDiv(p.Conns, p.ClientProcs)
	perLine := ceilDiv(p.peakPerHost(), p.HAProxies)
	return []portPair{
		{What: fmt.Sprintf("a client process's source (%s…) → the frontend %s", clientSource(0), frontendIP), Peak: perClient, Range: r},
		{What: fmt.Sprintf("one HAProxy's source (%s…) → one host, while another is drained", haproxySource(0)), Peak: perLine, Range: r},
		{What: fmt.Sprintf("not used: every HAProxy from %s → one host, while another is drained", appIP), Peak: p.peakPerHost(), Range: r},
	}
}
