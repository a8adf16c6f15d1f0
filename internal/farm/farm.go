package farm

import (
	"context"
	"errors"
	"fmt"
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

// Spec is what a farm runs.
type Spec struct {
	// Name names the farm's log folder.
	Name     string
	Backends []Backend
	Policy   Policy
}

// Sample is the farm at one tick.
type Sample struct {
	T       float64   `json:"t"`
	CPU     []float64 `json:"cpu"` // cores, per backend
	Conns   []int     `json:"conns"`
	Weight  []int     `json:"weight"` // HAProxy's current weight, -1 unknown
	Status  []string  `json:"status"`
	HostCPU float64   `json:"host_cpu"` // busy fraction of the whole machine
}

// Farm is one run's processes.
type Farm struct {
	env      *Env
	spec     Spec
	dir      string
	backends []*backendProc
	agents   []*Agent
	hp       *HAProxy
	clients  *supervise.Reports[ClientsReport]
	clientsC *supervise.Child
	start    time.Time
	// done is closed when the farm stops.
	done     chan struct{}
	stopOnce sync.Once
	stopErr  error
}

// backendProc is one running backend.
type backendProc struct {
	spec    Backend
	proc    *supervise.Child
	reports *supervise.Reports[backendReport]
	port    int
	cpu     *metrics.ProcessCPU
}

// Start starts the backends, their agents and HAProxy, and waits until
// HAProxy shows the spare backends out of service. When it fails after
// starting something, it returns the farm as well, for the caller to Stop.
func Start(ctx context.Context, e *Env, spec Spec) (*Farm, error) {
	// Not under e.Dir: the sockets' paths must stay short.
	dir, err := os.MkdirTemp("", "hfb")
	if err != nil {
		return nil, err
	}
	f := &Farm{env: e, spec: spec, dir: dir, done: make(chan struct{})}
	logDir := filepath.Join(e.logRoot, spec.Name+"-"+strings.ReplaceAll(spec.Policy.Name, "+", "-"))
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return f, err
	}
	sup := e.sup
	sup.SetLogDir(logDir)
	for _, b := range spec.Backends {
		cmd, err := roleCommand(e.self, roleBackend, backendArgs{Work: e.Load.Work(b.Speed)})
		if err != nil {
			return f, err
		}
		c, r, err := supervise.StartReporting[backendReport](sup, b.Name, cmd)
		if err != nil {
			return f, err
		}
		bp := &backendProc{spec: b, proc: c, reports: r}
		f.backends = append(f.backends, bp)
		first, err := r.AwaitFirst(ctx, c, 10*time.Second)
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
			Reference: e.Load.ReferenceCapacity(), CPUTarget: e.Load.CPUTarget(),
			Smoothing: e.Load.Smoothing, Rebalance: spec.Policy.Rebalance, Rebalancing: e.Load.Rebalancing,
			Maint: b.spec.Spare,
		})
		if err != nil {
			return f, err
		}
		f.agents = append(f.agents, a)
		servers = append(servers, haproxyServer{Name: b.spec.Name, Port: b.port, AgentPort: a.port})
	}
	f.hp, err = startHAProxy(ctx, sup, dir, haproxySpec{
		Balance: spec.Policy.Balance, Agent: spec.Policy.Agent, AgentInter: "1s",
		HardStop: e.Load.HardStop.String(), Servers: servers,
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
func (f *Farm) awaitReady(ctx context.Context) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		servers, err := f.hp.Servers(ctx)
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
			case !b.spec.Spare && f.spec.Policy.Agent && !strings.HasPrefix(s.AgentStatus, "L7OK"):
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

// StartClients starts the client process against HAProxy's frontend, with
// the load's clients times scale, and waits for its first report. The
// farm's clock starts with it.
func (f *Farm) StartClients(ctx context.Context, scale float64) error {
	l := f.env.Load
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
	c, r, err := supervise.StartReporting[ClientsReport](f.env.sup, "clients", cmd)
	if err != nil {
		return err
	}
	f.clientsC, f.clients = c, r
	f.start = time.Now()
	_, err = r.AwaitFirst(ctx, c, 10*time.Second)
	return err
}

// Elapsed is the time since the clients started, zero before.
func (f *Farm) Elapsed() time.Duration {
	if f.start.IsZero() {
		return 0
	}
	return time.Since(f.start)
}

// now is Elapsed in seconds.
func (f *Farm) now() float64 { return f.Elapsed().Seconds() }

// Clients is the client process's latest report.
func (f *Farm) Clients() ClientsReport { return f.clients.Latest() }

// Backends are the farm's backends, in the order of the samples.
func (f *Farm) Backends() []Backend {
	var out []Backend
	for _, b := range f.backends {
		out = append(out, b.spec)
	}
	return out
}

// Agents are the backends' agents, in the order of Backends.
func (f *Farm) Agents() []*Agent { return f.agents }

// Agent is the agent of the named backend, nil if there is none.
func (f *Farm) Agent(backend string) *Agent {
	for _, a := range f.agents {
		if a.name == backend {
			return a
		}
	}
	return nil
}

// HAProxy is the farm's HAProxy.
func (f *Farm) HAProxy() *HAProxy { return f.hp }

// Done is closed when the farm stops.
func (f *Farm) Done() <-chan struct{} { return f.done }

// Take samples the farm: CPU per backend since the previous call,
// connections as each backend counts them, HAProxy's weights.
func (f *Farm) Take(ctx context.Context, host *metrics.HostCPU) Sample {
	s := Sample{T: math.Round(f.now()*10) / 10}
	var stats map[string]haproxy.Stat
	if f.hp != nil {
		stats, _ = f.hp.Servers(ctx)
	}
	for _, b := range f.backends {
		busy, err := b.cpu.Busy(ctx)
		cores := busy * float64(runtime.NumCPU())
		if err != nil {
			cores = math.NaN()
		}
		s.CPU = append(s.CPU, cores)
		s.Conns = append(s.Conns, b.reports.Latest().Conns)
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

// AgentShed is what the agents closed to move connections: drains and
// rebalancing.
func (f *Farm) AgentShed(ctx context.Context) int {
	total := 0
	for _, a := range f.agents {
		st, err := a.Status(ctx)
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

// Stop ends every process of the farm, clients first so that nothing they
// see is caused by the teardown, and removes the farm's folder. It fails
// if one of them would not die. A second call returns the first's result.
func (f *Farm) Stop() error {
	f.stopOnce.Do(func() { f.stopErr = f.stop() })
	return f.stopErr
}

func (f *Farm) stop() error {
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

// Failed reports the first farm process that exited by itself.
func (f *Farm) Failed() error {
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
