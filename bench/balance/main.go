package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hafeed/hafeed/internal/farm"
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
	load      farm.Load
}

// policies are the benchmark's, in the order of its tables.
var policies = []farm.Policy{
	{Name: "roundrobin", Balance: "roundrobin"},
	{Name: "leastconn", Balance: "leastconn"},
	{Name: "hafeed", Balance: "leastconn", Agent: true},
	{Name: "hafeed+rebalance", Balance: "leastconn", Agent: true, Rebalance: true},
}

func parseFlags(args []string) (options, error) {
	opts := options{load: farm.DefaultLoad()}
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
		if !slices.ContainsFunc(policies, func(q farm.Policy) bool { return q.Name == p }) {
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
	if ok, err := farm.RunRole(); ok {
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
	if err == nil {
		err = runBench(ctx, self, opts, os.Stdout, os.Stderr)
	}
	switch {
	case errors.Is(err, farm.ErrNoHAProxy):
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

// plannedRun is one scenario under one policy.
type plannedRun struct {
	sc  scenario
	pol farm.Policy
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
func quickRun(sc scenario, pol farm.Policy) bool {
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
	e, err := farm.Prepare(ctx, self, opts.load, progress)
	if e != nil {
		defer func() {
			if stopErr := e.StopAll(); stopErr != nil {
				fmt.Fprintf(progress, "stopping: %v\n", stopErr)
				err = cmp.Or(err, stopErr)
			}
			if err != nil || opts.keepLogs {
				fmt.Fprintf(progress, "logs of every process: %s\n", e.LogDir())
				return
			}
			os.RemoveAll(e.Dir)
		}()
	}
	if err != nil {
		return err
	}
	l := e.Load
	fmt.Fprintf(progress, "%d runs on %d CPUs: %d hot + %d lazy clients, %.0f messages/s, %.0f µs (%d hashes of %.0f ns) a message at speed 1, budget %.2f cores a backend (targets.cpu %.3f), reference_capacity %d\n",
		len(runs), runtime.NumCPU(), int(float64(l.HotClients)*opts.scale), int(float64(l.LazyClients)*opts.scale),
		l.MessagesPerSecond()*opts.scale, l.WorkMicros, l.Work(1), l.HashNanos, l.BudgetCores, l.CPUTarget(), l.ReferenceCapacity())

	rep := report{
		Machine:   machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), HAProxy: farm.HAProxyVersion(), Load1: loadAvg()},
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
