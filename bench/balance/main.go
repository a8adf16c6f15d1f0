package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hafeed/hafeed/internal/supervise"
)

// options are the command line's.
type options struct {
	quick     bool
	json      bool
	jsonOut   string
	out       string
	scenarios []string
	policies  []string
	scale     float64
	keepLogs  bool
	demo      bool
	demoFor   time.Duration
	load      loadSpec
}

// defaultLoad is the full benchmark's load: 40 hot clients at 10 messages a
// second and 800 lazy ones at one every 2 s (half the messages each), 0.6
// cores of work at speed 1, a budget of 0.4 cores per backend.
func defaultLoad() loadSpec {
	return loadSpec{
		HotClients: 40, HotInterval: 100 * time.Millisecond,
		LazyClients: 800, LazyInterval: 2 * time.Second,
		HotRamp: 2 * time.Second, LazyStart: 2 * time.Second, LazyRamp: 4 * time.Second,
		Churn:       0.05,
		WorkMicros:  750,
		BudgetCores: 0.4,
		Smoothing:   5 * time.Second,
		Rebalancing: rebalanceSettings{Margin: 0.1, Sustain: 5 * time.Second, MaxRate: 0.03, Cooldown: 10 * time.Second},
		ShedRate:    50,
		HardStop:    5 * time.Second,
		PayloadSize: 32,
	}
}

func parseFlags(args []string) (options, error) {
	opts := options{load: defaultLoad()}
	fs := flag.NewFlagSet("balance", flag.ContinueOnError)
	fs.BoolVar(&opts.quick, "quick", false, "short runs of a subset (QUICK=1): steady under leastconn and hafeed, the other scenarios under hafeed+rebalance")
	fs.BoolVar(&opts.json, "json", false, "print the results as JSON instead of a markdown table")
	fs.StringVar(&opts.jsonOut, "json-out", "", "also write the JSON results, samples included, to this file")
	fs.StringVar(&opts.out, "out", "", "folder for the PNG plots (none when empty)")
	scen := fs.String("scenarios", "", "comma-separated scenarios to run: steady, scale-up, scale-down, reload (default: all)")
	pols := fs.String("policies", "", "comma-separated policies: roundrobin, leastconn, hafeed, hafeed+rebalance (default: all)")
	fs.Float64Var(&opts.scale, "clients-scale", 1, "multiply the number of clients (the load) by this")
	fs.Float64Var(&opts.load.WorkMicros, "work-us", opts.load.WorkMicros, "CPU microseconds one message costs a speed-1 backend")
	fs.Float64Var(&opts.load.BudgetCores, "budget", opts.load.BudgetCores, "CPU budget of a backend in cores (its utilisation 1)")
	fs.BoolVar(&opts.keepLogs, "keep-logs", false, "keep every process's log (they are kept anyway when a run fails)")
	fs.BoolVar(&opts.demo, "demo", false, "the live demo: HAProxy, 3 backends with agents and clients for about 90 s")
	fs.DurationVar(&opts.demoFor, "demo-duration", 90*time.Second, "with -demo: how long it runs")
	if err := fs.Parse(args); err != nil {
		return opts, err
	}
	if fs.NArg() > 0 {
		return opts, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, ",")
	}
	opts.scenarios, opts.policies = split(*scen), split(*pols)
	for _, p := range opts.policies {
		if !slices.ContainsFunc(policies, func(q policy) bool { return q.Name == p }) {
			return opts, fmt.Errorf("unknown policy %q", p)
		}
	}
	for _, s := range opts.scenarios {
		if !slices.ContainsFunc(scenarios(fullTimings), func(q scenario) bool { return q.Name == s }) {
			return opts, fmt.Errorf("unknown scenario %q", s)
		}
	}
	if opts.scale <= 0 || opts.load.WorkMicros <= 0 || opts.load.BudgetCores <= 0 {
		return opts, errors.New("-clients-scale, -work-us and -budget must be positive")
	}
	return opts, nil
}

func main() {
	if ok, err := runRoleFromEnv(); ok {
		if err != nil {
			fmt.Fprintln(os.Stderr, "balance role:", err)
			os.Exit(1)
		}
		return
	}
	opts, err := parseFlags(os.Args[1:])
	switch {
	case errors.Is(err, flag.ErrHelp):
		return
	case err != nil:
		fmt.Fprintln(os.Stderr, "balance:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	self, err := os.Executable()
	if err == nil && opts.demo {
		err = runDemo(ctx, self, opts, os.Stdout)
	} else if err == nil {
		err = runBench(ctx, self, opts, os.Stdout, os.Stderr)
	}
	switch {
	case errors.Is(err, errNoHAProxy):
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	case err != nil && ctx.Err() != nil:
		fmt.Fprintln(os.Stderr, "balance: interrupted; every process it started is stopped")
		os.Exit(130)
	case err != nil:
		fmt.Fprintln(os.Stderr, "balance:", err)
		os.Exit(1)
	}
}

// errNoHAProxy says how to install HAProxy when it is not on PATH.
var errNoHAProxy = errors.New("haproxy not found: install it with `sudo apt-get install haproxy`")

// checkHAProxy fails with errNoHAProxy when HAProxy is not on PATH.
func checkHAProxy() error {
	if _, err := exec.LookPath("haproxy"); err != nil {
		return errNoHAProxy
	}
	return nil
}

// prepared is what a benchmark or the demo needs before its first run.
type prepared struct {
	env *env
	tmp string
}

// prepare builds hafeed, measures the cost of a hash and makes the
// supervisor. The caller removes tmp and stops the supervisor's children.
func prepare(ctx context.Context, self string, load loadSpec, progress io.Writer) (*prepared, error) {
	if err := checkHAProxy(); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "hafeed-balance-")
	if err != nil {
		return nil, err
	}
	p := &prepared{tmp: tmp}
	logRoot := filepath.Join(tmp, "logs")
	if err := os.MkdirAll(logRoot, 0o755); err != nil {
		return p, err
	}
	fmt.Fprintf(progress, "building hafeed into %s (go build ./cmd/hafeed)\n", tmp)
	bin, err := buildHafeed(ctx, tmp)
	if err != nil {
		return p, err
	}
	if load.HashNanos, err = calibrate(ctx, self, load.PayloadSize); err != nil {
		return p, err
	}
	p.env = &env{self: self, hafeedBin: bin, sup: supervise.New(logRoot), logRoot: logRoot, load: load, progress: &lockedWriter{w: progress}}
	return p, nil
}

// lockedWriter serialises writes from the run loop and event goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
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

// plannedRun is one scenario under one policy.
type plannedRun struct {
	sc  scenario
	pol policy
}

// plan lists the scenarios and the runs the options select, in order.
func plan(opts options) ([]scenario, []plannedRun) {
	t := fullTimings
	if opts.quick {
		t = quickTimings
	}
	var scs []scenario
	var runs []plannedRun
	for _, sc := range scenarios(t) {
		if len(opts.scenarios) > 0 && !slices.Contains(opts.scenarios, sc.Name) {
			continue
		}
		added := false
		for _, pol := range policies {
			if len(opts.policies) > 0 && !slices.Contains(opts.policies, pol.Name) {
				continue
			}
			if opts.quick && len(opts.policies) == 0 && !quickRun(sc, pol) {
				continue
			}
			runs = append(runs, plannedRun{sc, pol})
			added = true
		}
		if added {
			scs = append(scs, sc)
		}
	}
	return scs, runs
}

// quickRun is the quick subset: the steady state under leastconn and
// hafeed, every other scenario under hafeed+rebalance.
func quickRun(sc scenario, pol policy) bool {
	if sc.Name == "steady" {
		return pol.Name == "leastconn" || pol.Name == "hafeed"
	}
	return pol.Name == "hafeed+rebalance"
}

// runBench runs the planned scenarios and policies, with self as the
// program that runs the child roles.
func runBench(ctx context.Context, self string, opts options, stdout, progress io.Writer) (err error) {
	started := time.Now()
	scs, runs := plan(opts)
	if len(runs) == 0 {
		return errors.New("no run selected")
	}
	p, err := prepare(ctx, self, opts.load, progress)
	if p != nil {
		defer func() {
			if p.env != nil {
				if stopErr := p.env.stopAll(); stopErr != nil {
					fmt.Fprintf(progress, "stopping: %v\n", stopErr)
					err = cmp.Or(err, stopErr)
				}
			}
			if err != nil || opts.keepLogs {
				fmt.Fprintf(progress, "logs of every process: %s\n", filepath.Join(p.tmp, "logs"))
				return
			}
			os.RemoveAll(p.tmp)
		}()
	}
	if err != nil {
		return err
	}
	e := p.env
	l := e.load
	fmt.Fprintf(progress, "%d runs on %d CPUs: %d hot + %d lazy clients, %.0f messages/s, %.0f µs (%d hashes of %.0f ns) a message at speed 1, budget %.2f cores a backend (targets.cpu %.3f), reference_capacity %d\n",
		len(runs), runtime.NumCPU(), int(float64(l.HotClients)*opts.scale), int(float64(l.LazyClients)*opts.scale),
		l.messagesPerSecond()*opts.scale, l.WorkMicros, l.work(1), l.HashNanos, l.BudgetCores, l.cpuTarget(), l.referenceCapacity())

	rep := report{
		Machine:   machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), HAProxy: haproxyVersion(), Load1: loadAvg()},
		Load:      describeLoad(l, opts.scale),
		Scenarios: scs,
	}
	for i, r := range runs {
		fmt.Fprintf(progress, "[%d/%d] %s under %s (%v)\n", i+1, len(runs), r.sc.Name, r.pol.Name, r.sc.Duration)
		res, err := runScenario(ctx, e, r.sc, r.pol, opts.scale)
		if err != nil {
			return fmt.Errorf("%s under %s: %w", r.sc.Name, r.pol.Name, err)
		}
		fmt.Fprintf(progress, "    max/mean CPU %.2f, cpu %v, conns %v, moved %d, failures %d, left %d, lost %d+%d, %.0f s\n",
			res.MaxMeanCPU, res.WindowCPU, res.WindowConns, res.Moved, res.Failures, res.Left, res.Lost, res.Mismatched, res.WallS)
		rep.Results = append(rep.Results, res)
	}
	if opts.out != "" {
		if err := os.MkdirAll(opts.out, 0o755); err != nil {
			return err
		}
		for _, sc := range scs {
			var of []runResult
			for _, r := range rep.Results {
				if r.Scenario == sc.Name {
					of = append(of, r)
				}
			}
			path, err := plotScenario(opts.out, sc, of)
			if err != nil {
				return fmt.Errorf("plotting %s: %w", sc.Name, err)
			}
			rep.Plots = append(rep.Plots, path)
			fmt.Fprintf(progress, "wrote %s\n", path)
		}
	}
	rep.WallS = float64(time.Since(started).Round(100 * time.Millisecond).Seconds())
	fmt.Fprintf(progress, "%d runs in %v\n", len(runs), time.Since(started).Round(time.Second))
	if opts.jsonOut != "" {
		f, err := os.Create(opts.jsonOut)
		if err != nil {
			return err
		}
		if err := writeJSON(f, rep); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	if opts.json {
		return writeJSON(stdout, rep)
	}
	writeTable(stdout, rep)
	return nil
}

// stopAll stops every process the benchmark started.
func (e *env) stopAll() error { return e.sup.StopAll() }

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
