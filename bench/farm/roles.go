package main

// The child roles: this program re-executed with a role as its first
// argument and the role's arguments as JSON in the second. A role reports
// on stdout, one JSON object a line, every reportEvery, and exits at once
// when its stdin closes (the coordinator stopped or died) or on SIGTERM:
// without closing its WebSockets one by one, which for 12,500 of them
// would take longer than the kernel closing them.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hafeed/hafeed/internal/wstest"
)

const (
	roleApp     = "__app"
	roleClients = "__clients"
)

// reportEvery is how often a role reports.
const reportEvery = 500 * time.Millisecond

// runRole runs the role named by args[0] and reports whether there was one.
func runRole(args []string) (bool, error) {
	if len(args) < 2 || (args[0] != roleApp && args[0] != roleClients) {
		return false, nil
	}
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		os.Exit(0)
	}()
	switch args[0] {
	case roleApp:
		var a appArgs
		if err := json.Unmarshal([]byte(args[1]), &a); err != nil {
			return true, fmt.Errorf("app arguments: %w", err)
		}
		return true, runApp(a, os.Stdout)
	default:
		var a clientsArgs
		if err := json.Unmarshal([]byte(args[1]), &a); err != nil {
			return true, fmt.Errorf("clients arguments: %w", err)
		}
		return true, runClients(a, os.Stdout)
	}
}

// roleCommand is the command that runs a role of this program.
func roleCommand(self, role string, args any) (*exec.Cmd, error) {
	b, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	return exec.Command(self, role, string(b)), nil
}

// --- app ---

// appArgs configure one process of a host's application: a WebSocket echo
// server on an SO_REUSEPORT socket that the host's other processes share.
type appArgs struct {
	Addr string `json:"addr"`
}

// appReport is what an application process reports.
type appReport struct {
	Conns int `json:"conns"`
}

func runApp(a appArgs, out io.Writer) error {
	lc := net.ListenConfig{
		// No keep-alive probes on 100,000 idle sockets: they would be
		// kernel work the agents' measurements share the machine with.
		KeepAlive: -1,
		Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			})
			if err != nil {
				return err
			}
			return serr
		},
	}
	ln, err := lc.Listen(context.Background(), "tcp4", a.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s with SO_REUSEPORT: %w", a.Addr, err)
	}
	srv := wstest.NewServerListener(ln, wstest.ServerOptions{})
	failed := make(chan error, 1)
	go func() { failed <- srv.Run(context.Background()) }()
	enc := json.NewEncoder(out)
	tick := time.NewTicker(reportEvery)
	defer tick.Stop()
	for {
		if err := enc.Encode(appReport{Conns: srv.Conns()}); err != nil {
			return err
		}
		select {
		case err := <-failed:
			return err
		case <-tick.C:
		}
	}
}

// --- clients ---

// clientsArgs configure one client process: clients of HAProxy's frontend
// from one source address, each sending a message every Interval and
// reconnecting when its connection ends.
type clientsArgs struct {
	Target   string        `json:"target"`
	Source   string        `json:"source"`
	Clients  int           `json:"clients"`
	RampUp   time.Duration `json:"ramp_up"`
	Interval time.Duration `json:"interval"`
	// DialTimeout bounds a connection attempt, handshake included.
	DialTimeout time.Duration `json:"dial_timeout"`
}

// failAfter is how long a client may stay disconnected before it counts as
// lost.
const failAfter = 5 * time.Second

// clientsReport is what a client process reports.
type clientsReport struct {
	Clients           int           `json:"clients"`
	Connected         int           `json:"connected"`
	Reconnects        int           `json:"reconnects"`
	Messages          int           `json:"messages"`
	Lost              int           `json:"lost"`
	Mismatched        int           `json:"mismatched"`
	Resent            int           `json:"resent"`
	EchoTimeouts      int           `json:"echo_timeouts"`
	DialFailures      int           `json:"dial_failures"`
	LongestDisconnect time.Duration `json:"longest_disconnect_ns"`
	// DisconnectedOver is how many clients are disconnected for longer than
	// failAfter now (one that never connected counts from its first try);
	// Failures counts every time a client crossed failAfter.
	DisconnectedOver int `json:"disconnected_over"`
	Failures         int `json:"failures"`
}

// add sums two processes' reports; the longest disconnection is the
// longer of the two.
func (r clientsReport) add(o clientsReport) clientsReport {
	return clientsReport{
		Clients:           r.Clients + o.Clients,
		Connected:         r.Connected + o.Connected,
		Reconnects:        r.Reconnects + o.Reconnects,
		Messages:          r.Messages + o.Messages,
		Lost:              r.Lost + o.Lost,
		Mismatched:        r.Mismatched + o.Mismatched,
		Resent:            r.Resent + o.Resent,
		EchoTimeouts:      r.EchoTimeouts + o.EchoTimeouts,
		DialFailures:      r.DialFailures + o.DialFailures,
		LongestDisconnect: max(r.LongestDisconnect, o.LongestDisconnect),
		DisconnectedOver:  r.DisconnectedOver + o.DisconnectedOver,
		Failures:          r.Failures + o.Failures,
	}
}

func runClients(a clientsArgs, out io.Writer) error {
	src, err := netip.ParseAddr(a.Source)
	if err != nil {
		return fmt.Errorf("source address: %w", err)
	}
	pop, err := wstest.NewPopulation(a.Target, wstest.PopulationOptions{
		Clients:      a.Clients,
		Interval:     a.Interval,
		RampUp:       a.RampUp,
		LocalAddrs:   []netip.Addr{src},
		TCPKeepAlive: -1,
		DialTimeout:  a.DialTimeout,
	})
	if err != nil {
		return err
	}
	go func() { _ = pop.Run(context.Background()) }()
	enc := json.NewEncoder(out)
	tick := time.NewTicker(reportEvery)
	defer tick.Stop()
	failures := 0
	var last time.Time
	for {
		now := time.Now()
		s := pop.Stats()
		over := s.ClientsDisconnectedOver(failAfter)
		if !last.IsZero() {
			// Those over failAfter now but not over it at the last report.
			failures += over - s.ClientsDisconnectedOver(failAfter+now.Sub(last))
		}
		last = now
		r := clientsReport{
			Clients: s.Clients, Connected: s.Connected, Reconnects: s.Reconnects, Messages: s.Messages,
			Lost: s.Lost, Mismatched: s.Mismatched, Resent: s.Resent, EchoTimeouts: s.EchoTimeouts,
			DialFailures: s.DialFailures, LongestDisconnect: s.LongestDisconnect,
			DisconnectedOver: over, Failures: failures,
		}
		if err := enc.Encode(r); err != nil {
			return err
		}
		<-tick.C
	}
}
