package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"

	"github.com/hafeed/hafeed/internal/sockdiag"
)

// TCP states as the kernel numbers them (include/net/tcp_states.h).
const (
	tcpEstablished = sockdiag.StateEstablished
	tcpListen      = sockdiag.StateListen
)

// Connection counting methods, as reported by Conns.Method.
const (
	MethodNetlink = "netlink"
	MethodProc    = "procfs"
)

// Conns counts established inbound TCP connections, IPv4 and IPv6, whose
// local port is one of Ports. With no Ports it counts those on every
// listening TCP port of the host except the ones in Exclude.
type Conns struct {
	Ports   []uint16
	Exclude []uint16
	// ProcRoot is where procfs is mounted, for the fallback reader; "" is /proc.
	ProcRoot string

	// netlinkSocket, in tests, opens the netlink socket; nil otherwise.
	netlinkSocket func() (int, error)

	noNetlink atomic.Bool
	method    atomic.Value
}

// ConnCount is the result of one count.
type ConnCount struct {
	Established int
	// Ports are the local ports that were counted.
	Ports []uint16
	// Paths counts the connections by the address they came from (an
	// HAProxy's source address) and the address and port of this host
	// they reached (a server line's), for at most MaxPaths pairs; the
	// others are counted in Established only.
	Paths map[Path]int
}

// Path is where connections come from and where they reach: between an
// HAProxy's source address and one ip:port of this host there are only as
// many connections as the source's port range holds, whatever other
// ip:ports of this host the same source reaches.
type Path struct {
	Peer  netip.Addr
	Local netip.AddrPort
}

// MaxPaths bounds ConnCount.Paths: a host reached by clients directly has
// as many peers as clients, and only the few HAProxy sources matter.
const MaxPaths = 256

// pathTally counts connections by path, for at most MaxPaths paths.
type pathTally map[Path]int

func (t pathTally) add(p Path) {
	if _, ok := t[p]; ok || len(t) < MaxPaths {
		t[p]++
	}
}

// Method says how the last count was taken: netlink sock_diag, or procfs
// when netlink was not available.
func (c *Conns) Method() string {
	m, _ := c.method.Load().(string)
	return m
}

// Count takes one count.
func (c *Conns) Count(ctx context.Context) (ConnCount, error) {
	if err := ctx.Err(); err != nil {
		return ConnCount{}, err
	}
	if !c.noNetlink.Load() {
		n, err := c.count(netlinkSource{socket: c.netlinkSocket})
		if err == nil {
			c.method.Store(MethodNetlink)
			return n, nil
		}
		if !errors.Is(err, sockdiag.ErrUnavailable) {
			return ConnCount{}, err
		}
		c.noNetlink.Store(true)
	}
	n, err := c.count(procSource{root: c.procRoot()})
	if err == nil {
		c.method.Store(MethodProc)
	}
	return n, err
}

func (c *Conns) procRoot() string {
	if c.ProcRoot == "" {
		return "/proc"
	}
	return c.ProcRoot
}

// socketSource is one way to read the kernel's TCP socket tables.
type socketSource interface {
	listeningPorts() ([]uint16, error)
	countEstablished(ports []uint16, paths pathTally) (int, error)
}

func (c *Conns) count(src socketSource) (ConnCount, error) {
	ports := c.Ports
	if len(ports) == 0 {
		listening, err := src.listeningPorts()
		if err != nil {
			return ConnCount{}, fmt.Errorf("listing listening ports: %w", err)
		}
		ports = slices.DeleteFunc(listening, func(p uint16) bool { return slices.Contains(c.Exclude, p) })
	}
	if len(ports) == 0 {
		return ConnCount{Ports: ports}, nil
	}
	paths := pathTally{}
	n, err := src.countEstablished(ports, paths)
	if err != nil {
		return ConnCount{}, fmt.Errorf("counting established connections: %w", err)
	}
	return ConnCount{Established: n, Ports: ports, Paths: paths}, nil
}

// procSource reads /proc/net/tcp and /proc/net/tcp6.
type procSource struct{ root string }

func (p procSource) scan(fn func(procSocket)) error {
	for _, name := range []string{"tcp", "tcp6"} {
		f, err := os.Open(filepath.Join(p.root, "net", name))
		if errors.Is(err, os.ErrNotExist) && name == "tcp6" {
			continue // kernel without IPv6
		}
		if err != nil {
			return err
		}
		err = parseProcNetTCP(f, fn)
		f.Close()
		if err != nil {
			return fmt.Errorf("reading %s: %w", f.Name(), err)
		}
	}
	return nil
}

func (p procSource) listeningPorts() ([]uint16, error) {
	var ports []uint16
	err := p.scan(func(s procSocket) {
		if s.state == tcpListen && !slices.Contains(ports, s.localPort) {
			ports = append(ports, s.localPort)
		}
	})
	slices.Sort(ports)
	return ports, err
}

// countEstablished counts each connection once. The kernel writes the
// table a page at a time, releasing its locks in between, and a socket
// opened or closed meanwhile shifts the next page: lines already written
// are written again (on a loaded host, 4 to 6 lines for 3 sockets). An
// established socket is the only one with its two ends, so those name it.
func (p procSource) countEstablished(ports []uint16, paths pathTally) (int, error) {
	type conn struct{ local, remote netip.AddrPort }
	seen := map[conn]struct{}{}
	unnamed := 0
	err := p.scan(func(s procSocket) {
		if s.state != tcpEstablished || !slices.Contains(ports, s.localPort) {
			return
		}
		local, ok := parseProcAddr(s.localAddr)
		peer, ok2 := parseProcAddr(s.remoteAddr)
		if !ok || !ok2 {
			unnamed++ // counted, though a repeat of it cannot be told
			return
		}
		c := conn{netip.AddrPortFrom(local, s.localPort), netip.AddrPortFrom(peer, s.remotePort)}
		if _, dup := seen[c]; dup {
			return
		}
		seen[c] = struct{}{}
		paths.add(Path{Peer: peer, Local: c.local})
	})
	return len(seen) + unnamed, err
}
