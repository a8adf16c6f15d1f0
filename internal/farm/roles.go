package farm

// The child roles. The calling program re-executes itself with roleEnv
// naming the role and argsEnv holding its arguments as JSON. A role reports on stdout,
// one JSON object a line, and stops when its stdin closes (the parent asks,
// or dies) or on SIGTERM.

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/hafeed/hafeed/internal/wstest"
)

const (
	roleEnv = "HAFEED_FARM_ROLE"
	argsEnv = "HAFEED_FARM_ARGS"

	roleBackend   = "backend"
	roleClients   = "clients"
	roleCalibrate = "calibrate"
)

// reportEvery is how often a role reports.
const reportEvery = 100 * time.Millisecond

// RunRole runs the role named in the environment, if any, and reports
// whether there was one. A program that starts farms calls it first in its
// main and exits when it reports a role.
func RunRole() (bool, error) {
	role := os.Getenv(roleEnv)
	if role == "" {
		return false, nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	args := []byte(os.Getenv(argsEnv))
	switch role {
	case roleBackend:
		var a backendArgs
		if err := json.Unmarshal(args, &a); err != nil {
			return true, fmt.Errorf("backend arguments: %w", err)
		}
		return true, runBackend(ctx, a, os.Stdout)
	case roleClients:
		var a clientsArgs
		if err := json.Unmarshal(args, &a); err != nil {
			return true, fmt.Errorf("clients arguments: %w", err)
		}
		return true, runClients(ctx, a, os.Stdout)
	case roleCalibrate:
		var a calibrateArgs
		if err := json.Unmarshal(args, &a); err != nil {
			return true, fmt.Errorf("calibrate arguments: %w", err)
		}
		return true, json.NewEncoder(os.Stdout).Encode(calibrateReport{HashNanos: hashNanos(a.PayloadSize)})
	}
	return true, fmt.Errorf("unknown role %q", role)
}

// roleCommand is the command that runs a role of this program.
func roleCommand(self, role string, args any) (*exec.Cmd, error) {
	b, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), roleEnv+"="+role, argsEnv+"="+string(b))
	return cmd, nil
}

// --- calibrate ---

// calibrateArgs ask for the cost of one hash of a message, measured by the
// same build that runs the backends.
type calibrateArgs struct {
	PayloadSize int `json:"payload_size"`
}

type calibrateReport struct {
	HashNanos float64 `json:"hash_ns"`
}

// hashNanos measures one SHA-256 of a message of size bytes, the best of a
// few tries so that a busy machine does not inflate it.
func hashNanos(size int) float64 {
	msg := make([]byte, size)
	best := time.Duration(math.MaxInt64)
	const n = 20000
	for range 7 {
		start := time.Now()
		var sum [sha256.Size]byte
		for range n {
			sum = sha256.Sum256(msg)
		}
		msg[0] = sum[0]
		best = min(best, time.Since(start))
	}
	return float64(best.Nanoseconds()) / n
}

// calibrate runs the calibrate role and returns the cost of one hash.
func calibrate(ctx context.Context, self string, payloadSize int) (float64, error) {
	cmd, err := roleCommand(self, roleCalibrate, calibrateArgs{PayloadSize: payloadSize})
	if err != nil {
		return 0, err
	}
	run := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	run.Env = cmd.Env
	out, err := run.Output()
	if err != nil {
		return 0, fmt.Errorf("measuring the cost of a hash: %w", err)
	}
	var r calibrateReport
	if err := json.Unmarshal(out, &r); err != nil || r.HashNanos <= 0 {
		return 0, fmt.Errorf("measuring the cost of a hash: unexpected output %q", out)
	}
	return r.HashNanos, nil
}

// --- backend ---

// backendArgs configure a backend: a WebSocket echo server that hashes each
// message Work times.
type backendArgs struct {
	Work int `json:"work"`
}

// backendReport is what a backend reports.
type backendReport struct {
	Port  int `json:"port"`
	Conns int `json:"conns"`
}

func runBackend(ctx context.Context, a backendArgs, out io.Writer) error {
	srv, err := wstest.NewServer("127.0.0.1:0", wstest.ServerOptions{Work: a.Work, StopTimeout: 2 * time.Second})
	if err != nil {
		return err
	}
	port := srv.Addr().(*net.TCPAddr).Port
	enc := json.NewEncoder(out)
	if err := enc.Encode(backendReport{Port: port}); err != nil {
		return err
	}
	go func() {
		ticker := time.NewTicker(reportEvery)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
				_ = enc.Encode(backendReport{Port: port, Conns: srv.Conns()})
			}
		}
	}()
	return srv.Run(ctx)
}

// --- clients ---

// clientsArgs configure the client process: two populations through
// HAProxy's frontend, hot clients first.
type clientsArgs struct {
	Target string   `json:"target"`
	Hot    popSpec  `json:"hot"`
	Lazy   popSpec  `json:"lazy"`
	Common popTimes `json:"common"`
}

// popSpec is one population of clients that send at the same interval.
type popSpec struct {
	Clients  int           `json:"clients"`
	Interval time.Duration `json:"interval"`
	// Start delays the population's first connections; RampUp spreads them.
	Start  time.Duration `json:"start"`
	RampUp time.Duration `json:"ramp_up"`
	// Churn is the fraction of clients replaced per second.
	Churn float64 `json:"churn"`
}

// popTimes are the settings both populations share.
type popTimes struct {
	PayloadSize int           `json:"payload_size"`
	BackoffMin  time.Duration `json:"backoff_min"`
	BackoffMax  time.Duration `json:"backoff_max"`
	EchoTimeout time.Duration `json:"echo_timeout"`
}

// failAfter is how long a client may stay disconnected before it counts as
// a client-visible failure.
const failAfter = 5 * time.Second

// PopReport is one population's counters.
type PopReport struct {
	Started           bool          `json:"started"`
	Clients           int           `json:"clients"`
	Connected         int           `json:"connected"`
	Reconnects        int           `json:"reconnects"`
	Messages          int           `json:"messages"`
	Lost              int           `json:"lost"`
	Mismatched        int           `json:"mismatched"`
	Resent            int           `json:"resent"`
	ServiceRestarts   int           `json:"service_restarts"`
	EchoTimeouts      int           `json:"echo_timeouts"`
	DialFailures      int           `json:"dial_failures"`
	Departures        int           `json:"departures"`
	LongestDisconnect time.Duration `json:"longest_disconnect_ns"`
	// DisconnectedOver is how many clients are disconnected for longer than
	// failAfter now; Failures counts every time a client crossed failAfter.
	DisconnectedOver int `json:"disconnected_over"`
	Failures         int `json:"failures"`
}

// ClientsReport is what the client process reports.
type ClientsReport struct {
	At   time.Time `json:"at"`
	Hot  PopReport `json:"hot"`
	Lazy PopReport `json:"lazy"`
}

// Total adds the two populations up.
func (r ClientsReport) Total() PopReport {
	h, l := r.Hot, r.Lazy
	return PopReport{
		Started:           h.Started && l.Started,
		Clients:           h.Clients + l.Clients,
		Connected:         h.Connected + l.Connected,
		Reconnects:        h.Reconnects + l.Reconnects,
		Messages:          h.Messages + l.Messages,
		Lost:              h.Lost + l.Lost,
		Mismatched:        h.Mismatched + l.Mismatched,
		Resent:            h.Resent + l.Resent,
		ServiceRestarts:   h.ServiceRestarts + l.ServiceRestarts,
		EchoTimeouts:      h.EchoTimeouts + l.EchoTimeouts,
		DialFailures:      h.DialFailures + l.DialFailures,
		Departures:        h.Departures + l.Departures,
		LongestDisconnect: max(h.LongestDisconnect, l.LongestDisconnect),
		DisconnectedOver:  h.DisconnectedOver + l.DisconnectedOver,
		Failures:          h.Failures + l.Failures,
	}
}

// population is a wstest.Population with the failure counter the report needs.
type population struct {
	spec     popSpec
	pop      *wstest.Population
	started  bool
	lastTick time.Time
	failures int
}

func runClients(ctx context.Context, a clientsArgs, out io.Writer) error {
	var pops []*population
	for _, spec := range []popSpec{a.Hot, a.Lazy} {
		p := &population{spec: spec}
		if spec.Clients > 0 {
			pop, err := wstest.NewPopulation(a.Target, wstest.PopulationOptions{
				Clients:     spec.Clients,
				Interval:    spec.Interval,
				PayloadSize: a.Common.PayloadSize,
				RampUp:      spec.RampUp,
				Churn:       spec.Churn,
				EchoTimeout: a.Common.EchoTimeout,
				BackoffMin:  a.Common.BackoffMin,
				BackoffMax:  a.Common.BackoffMax,
			})
			if err != nil {
				return err
			}
			p.pop = pop
		}
		pops = append(pops, p)
	}

	var wg sync.WaitGroup
	var mu sync.Mutex // guards population.started
	start := time.Now()
	for _, p := range pops {
		if p.pop == nil {
			continue
		}
		wg.Go(func() {
			timer := time.NewTimer(p.spec.Start)
			defer timer.Stop()
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			mu.Lock()
			p.started = true
			mu.Unlock()
			_ = p.pop.Run(ctx)
		})
	}

	enc := json.NewEncoder(out)
	report := func(now time.Time) ClientsReport {
		mu.Lock()
		defer mu.Unlock()
		r := ClientsReport{At: now}
		for i, p := range pops {
			pr := p.observe(now)
			if i == 0 {
				r.Hot = pr
			} else {
				r.Lazy = pr
			}
		}
		return r
	}
	ticker := time.NewTicker(reportEvery)
	defer ticker.Stop()
	_ = enc.Encode(report(start))
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case now := <-ticker.C:
			if err := enc.Encode(report(now)); err != nil {
				return fmt.Errorf("reporting: %w", err)
			}
		}
	}
}

// observe takes a snapshot and counts the clients that crossed failAfter
// since the previous one: those disconnected for longer than failAfter but
// not longer than failAfter plus the time since then.
func (p *population) observe(now time.Time) PopReport {
	if p.pop == nil {
		return PopReport{Started: true}
	}
	s := p.pop.Stats()
	r := PopReport{
		Started:           p.started,
		Clients:           s.Clients,
		Connected:         s.Connected,
		Reconnects:        s.Reconnects,
		Messages:          s.Messages,
		Lost:              s.Lost,
		Mismatched:        s.Mismatched,
		Resent:            s.Resent,
		ServiceRestarts:   s.ServiceRestarts,
		EchoTimeouts:      s.EchoTimeouts,
		DialFailures:      s.DialFailures,
		Departures:        s.Departures,
		LongestDisconnect: s.LongestDisconnect,
		DisconnectedOver:  s.ClientsDisconnectedOver(failAfter),
	}
	if !p.lastTick.IsZero() {
		since := now.Sub(p.lastTick)
		p.failures += r.DisconnectedOver - s.ClientsDisconnectedOver(failAfter+since)
	}
	p.lastTick = now
	r.Failures = p.failures
	return r
}
