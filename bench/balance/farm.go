package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/hafeed/hafeed/haproxy"
	"github.com/hafeed/hafeed/internal/supervise"
	"github.com/hafeed/hafeed/metrics"
)

// backendSpec is one backend of a scenario.
type backendSpec struct {
	Name string
	// Speed is the host's relative speed: a message costs it 1/Speed times
	// the work of a speed-1 host.
	Speed float64
	// Spare backends start out of service (hafeed maint) and enter it at
	// the scenario's event.
	Spare bool
}

// policy is how HAProxy balances.
type policy struct {
	Name      string
	Balance   string // roundrobin or leastconn
	Agent     bool   // agent-check to hafeed
	Rebalance bool   // hafeed's rebalance.enabled
}

var policies = []policy{
	{Name: "roundrobin", Balance: "roundrobin"},
	{Name: "leastconn", Balance: "leastconn"},
	{Name: "hafeed", Balance: "leastconn", Agent: true},
	{Name: "hafeed+rebalance", Balance: "leastconn", Agent: true, Rebalance: true},
}

// loadSpec is the client load and the agents' settings, shared by every run.
type loadSpec struct {
	HotClients   int
	HotInterval  time.Duration
	LazyClients  int
	LazyInterval time.Duration
	// HotRamp spreads the hot clients' arrivals from t=0; the lazy ones
	// arrive from LazyStart, spread over LazyRamp.
	HotRamp, LazyStart, LazyRamp time.Duration
	// Churn is the fraction of clients replaced per second.
	Churn float64
	// WorkMicros is the CPU one message costs a speed-1 backend.
	WorkMicros float64
	// HashNanos is the measured cost of one SHA-256 of a message.
	HashNanos float64
	// BudgetCores is each backend's CPU budget: utilisation 1.
	BudgetCores float64
	Smoothing   time.Duration
	Rebalancing rebalanceSettings
	// ShedRate is the drain's --shed-rate.
	ShedRate float64
	// HardStop is HAProxy's hard-stop-after.
	HardStop time.Duration
	// PayloadSize is the size of a message.
	PayloadSize int
}

// messagesPerSecond is the client load in messages per second.
func (l loadSpec) messagesPerSecond() float64 {
	return float64(l.HotClients)/l.HotInterval.Seconds() + float64(l.LazyClients)/l.LazyInterval.Seconds()
}

// demandCores is the CPU the load costs at speed 1.
func (l loadSpec) demandCores() float64 { return l.messagesPerSecond() * l.WorkMicros / 1e6 }

// referenceCapacity is the connections a speed-1 backend holds at its
// budget with the average client mix.
func (l loadSpec) referenceCapacity() int {
	perConn := l.demandCores() / float64(l.HotClients+l.LazyClients)
	return int(math.Round(l.BudgetCores / perConn))
}

// work is the hash count per message of a backend of the given speed.
func (l loadSpec) work(speed float64) int {
	return max(1, int(math.Round(l.WorkMicros*1000/l.HashNanos/speed)))
}

// cpuTarget is targets.cpu: the budget as a fraction of the machine.
func (l loadSpec) cpuTarget() float64 {
	return math.Round(l.BudgetCores/float64(runtime.NumCPU())*1000) / 1000
}

// env is what every run shares.
type env struct {
	self      string // this program, for the child roles
	hafeedBin string
	sup       *supervise.Supervisor
	logRoot   string
	load      loadSpec
	progress  io.Writer
}

// sample is the farm at one tick.
type sample struct {
	T       float64   `json:"t"`
	CPU     []float64 `json:"cpu"` // cores, per backend
	Conns   []int     `json:"conns"`
	Weight  []int     `json:"weight"` // HAProxy's current weight, -1 unknown
	Status  []string  `json:"status"`
	HostCPU float64   `json:"host_cpu"` // busy fraction of the whole machine
}

// event is something the run did, at a time since the clients started.
type event struct {
	At   float64 `json:"t"`
	What string  `json:"what"`
}

// farm is one run's processes.
type farm struct {
	env      *env
	sc       scenario
	pol      policy
	dir      string
	backends []*backendProc
	agents   []*hafeedProc
	hp       *haproxyProc
	clients  *reports[clientsReport]
	clientsC *supervise.Child
	start    time.Time
	// done is closed when the farm stops.
	done chan struct{}

	mu     sync.Mutex
	events []event
}

// backendProc is one running backend.
type backendProc struct {
	spec    backendSpec
	proc    *supervise.Child
	reports *reports[backendReport]
	port    int
	cpu     *metrics.ProcessCPU
}

// startFarm starts the backends, their agents and HAProxy, and waits until
// HAProxy shows the spare backends out of service.
func startFarm(ctx context.Context, e *env, sc scenario, pol policy) (*farm, error) {
	dir, err := os.MkdirTemp("", "hfb")
	if err != nil {
		return nil, err
	}
	f := &farm{env: e, sc: sc, pol: pol, dir: dir, done: make(chan struct{})}
	logDir := filepath.Join(e.logRoot, sc.Name+"-"+strings.ReplaceAll(pol.Name, "+", "-"))
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	sup := e.sup
	sup.SetLogDir(logDir)
	for _, b := range sc.Backends {
		cmd, err := roleCommand(e.self, roleBackend, backendArgs{Work: e.load.work(b.Speed)})
		if err != nil {
			return f, err
		}
		c, r, err := startReporting[backendReport](sup, b.Name, cmd)
		if err != nil {
			return f, err
		}
		bp := &backendProc{spec: b, proc: c, reports: r}
		f.backends = append(f.backends, bp)
		first, err := r.awaitFirst(ctx, c, 10*time.Second)
		if err != nil {
			return f, err
		}
		bp.port = first.Port
		bp.cpu = &metrics.ProcessCPU{PID: c.PID(), CPUs: runtime.NumCPU()}
	}
	sock := filepath.Join(dir, "admin.sock")
	var servers []haproxyServer
	for _, b := range f.backends {
		a, err := startHafeed(ctx, sup, e.hafeedBin, dir, hafeedSpec{
			Server: b.spec.Name, Port: b.port, PID: b.proc.PID(), Sock: sock,
			Reference: e.load.referenceCapacity(), CPUTarget: e.load.cpuTarget(),
			Smoothing: e.load.Smoothing, Rebalance: pol.Rebalance, Rebalancing: e.load.Rebalancing,
			Maint: b.spec.Spare,
		})
		if err != nil {
			return f, err
		}
		f.agents = append(f.agents, a)
		servers = append(servers, haproxyServer{Name: b.spec.Name, Port: b.port, AgentPort: a.port})
	}
	f.hp, err = startHAProxy(ctx, sup, dir, haproxySpec{
		Balance: pol.Balance, Agent: pol.Agent, AgentInter: "1s",
		HardStop: e.load.HardStop.String(), Servers: servers,
	})
	if err != nil {
		return f, err
	}
	if f.hp.sock != sock {
		return f, fmt.Errorf("haproxy socket %s, agents use %s", f.hp.sock, sock)
	}
	return f, f.awaitReady(ctx)
}

// awaitReady waits until HAProxy shows every spare backend in maintenance
// (hafeed pushes it) and, with agent-check, has heard every other agent.
func (f *farm) awaitReady(ctx context.Context) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		servers, err := f.hp.servers(ctx)
		ready := err == nil
		var waiting []string
		for _, b := range f.backends {
			s := servers[b.spec.Name]
			switch {
			case !ready:
			case b.spec.Spare && !strings.HasPrefix(s.Status, "MAINT"):
				waiting = append(waiting, b.spec.Name+" in maintenance")
			case !b.spec.Spare && !strings.HasPrefix(s.Status, "UP"):
				waiting = append(waiting, b.spec.Name+" up")
			case !b.spec.Spare && f.pol.Agent && !strings.HasPrefix(s.AgentStatus, "L7OK"):
				waiting = append(waiting, b.spec.Name+"'s agent polled")
			}
		}
		if ready && len(waiting) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("HAProxy not ready within 15s: waiting for %s (%v)", strings.Join(waiting, ", "), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startClients starts the client process against HAProxy's frontend.
func (f *farm) startClients(ctx context.Context, scale float64) error {
	l := f.env.load
	args := clientsArgs{
		Target: "ws://" + f.hp.frontend + "/",
		Hot: popSpec{Clients: int(math.Round(float64(l.HotClients) * scale)), Interval: l.HotInterval,
			RampUp: l.HotRamp, Churn: l.Churn},
		Lazy: popSpec{Clients: int(math.Round(float64(l.LazyClients) * scale)), Interval: l.LazyInterval,
			Start: l.LazyStart, RampUp: l.LazyRamp, Churn: l.Churn},
		Common: popTimes{PayloadSize: l.PayloadSize, BackoffMin: 100 * time.Millisecond, BackoffMax: 2 * time.Second,
			EchoTimeout: 10 * time.Second},
	}
	cmd, err := roleCommand(f.env.self, roleClients, args)
	if err != nil {
		return err
	}
	c, r, err := startReporting[clientsReport](f.env.sup, "clients", cmd)
	if err != nil {
		return err
	}
	f.clientsC, f.clients = c, r
	f.start = time.Now()
	_, err = r.awaitFirst(ctx, c, 10*time.Second)
	return err
}

// now is the time since the clients started, in seconds.
func (f *farm) now() float64 { return time.Since(f.start).Seconds() }

func (f *farm) record(what string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, event{At: math.Round(f.now()*10) / 10, What: what})
	fmt.Fprintf(f.env.progress, "    %5.1fs  %s\n", f.now(), what)
}

// take samples the farm: CPU per backend since the previous call,
// connections as each backend counts them, HAProxy's weights.
func (f *farm) take(ctx context.Context, host *metrics.HostCPU) sample {
	s := sample{T: math.Round(f.now()*10) / 10}
	var stats map[string]haproxy.Stat
	if f.hp != nil {
		stats, _ = f.hp.servers(ctx)
	}
	for _, b := range f.backends {
		busy, err := b.cpu.Busy(ctx)
		cores := busy * float64(runtime.NumCPU())
		if err != nil {
			cores = math.NaN()
		}
		s.CPU = append(s.CPU, cores)
		s.Conns = append(s.Conns, b.reports.latest().Conns)
		w, status := -1, ""
		if st, ok := stats[b.spec.Name]; ok {
			w, status = st.Weight, st.Status
		}
		s.Weight = append(s.Weight, w)
		s.Status = append(s.Status, status)
	}
	if busy, err := host.Busy(ctx); err == nil {
		s.HostCPU = busy
	}
	return s
}

// agentShed is what the agents closed to move connections: drains and
// rebalancing.
func (f *farm) agentShed(ctx context.Context) int {
	total := 0
	for _, a := range f.agents {
		st, err := a.status(ctx)
		if err != nil {
			continue
		}
		if st.Shed != nil {
			total += st.Shed.Closed
		}
		if st.Rebalance != nil {
			total += st.Rebalance.Shed
		}
	}
	return total
}

// stop ends every process of the farm: clients first, so that nothing
// they see is caused by the teardown. It fails if one of them would not
// die.
func (f *farm) stop() error {
	close(f.done)
	var mu sync.Mutex
	var errs []error
	stop := func(c *supervise.Child) {
		if err := f.env.sup.Stop(c); err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	}
	if f.clientsC != nil {
		stop(f.clientsC)
	}
	var wg sync.WaitGroup
	for _, a := range f.agents {
		wg.Go(func() { stop(a.proc) })
	}
	if f.hp != nil {
		wg.Go(func() { stop(f.hp.proc) })
	}
	wg.Wait()
	for _, b := range f.backends {
		wg.Go(func() { stop(b.proc) })
	}
	wg.Wait()
	errs = append(errs, os.RemoveAll(f.dir))
	return errors.Join(errs...)
}

// childFailed reports the first farm process that exited by itself.
func (f *farm) childFailed() error {
	var procs []*supervise.Child
	for _, b := range f.backends {
		procs = append(procs, b.proc)
	}
	for _, a := range f.agents {
		procs = append(procs, a.proc)
	}
	if f.hp != nil {
		procs = append(procs, f.hp.proc)
	}
	if f.clientsC != nil {
		procs = append(procs, f.clientsC)
	}
	for _, c := range procs {
		if c.Exited() {
			return fmt.Errorf("%s exited during the run: %v\n%s", c.Name, c.Err(), c.Tail())
		}
	}
	return nil
}
