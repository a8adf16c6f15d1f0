package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	hpolicy "github.com/hafeed/hafeed/agent/policy"
)

// ScenarioResult is one scenario's results for every policy.
type ScenarioResult struct {
	Scenario
	// ReferenceCapacity is the policy's reference capacity: the
	// connections a speed-1 host holds at the CPU target.
	ReferenceCapacity int      `json:"reference_capacity"`
	WallSeconds       float64  `json:"wall_s"`
	Results           []Result `json:"results"`
	// Speeds are the hosts' speeds (the added host last); DrainedHost and
	// NoisyHost the hosts the events hit.
	Speeds      []float64 `json:"speeds"`
	DrainedHost int       `json:"drained_host"`
	NoisyHost   int       `json:"noisy_host"`
}

// options are the command line's.
type options struct {
	scenario string
	seed     uint64
	json     bool
	plotDir  string
	quick    bool
	parallel int
	profile  string
	// haproxies overrides the scenarios' HAProxy count when above 0;
	// referenceScale multiplies the reference capacity the policy gets.
	haproxies      int
	referenceScale float64
	policy         hpolicy.PolicyConfig
}

func main() {
	opts, err := parseFlags(os.Args[1:])
	switch {
	case errors.Is(err, flag.ErrHelp):
		return
	case err != nil:
		fmt.Fprintln(os.Stderr, "sim:", err)
		os.Exit(2)
	}
	if err := profiled(opts, func() error { return run(opts, os.Stdout, os.Stderr) }); err != nil {
		fmt.Fprintln(os.Stderr, "sim:", err)
		os.Exit(1)
	}
}

// profiled runs f, under the CPU profiler when asked to.
func profiled(opts options, f func() error) error {
	if opts.profile == "" {
		return f()
	}
	stop, err := startProfile(opts.profile)
	if err != nil {
		return err
	}
	defer stop()
	return f()
}

// startProfile starts CPU profiling into path and returns what stops it.
func startProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

func parseFlags(args []string) (options, error) {
	opts := options{policy: hpolicy.DefaultConfig()}
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.StringVar(&opts.scenario, "scenario", "all", "which scenario to run: all, small, medium, large, small-baseline, medium-baseline, small-idle, medium-idle, autoscaled, daily or daily-equal")
	fs.Uint64Var(&opts.seed, "seed", 1, "random seed; the same seed gives the same output")
	fs.BoolVar(&opts.json, "json", false, "print the results as JSON instead of a table")
	fs.StringVar(&opts.plotDir, "plot", "", "write sim-utilisation.png (utilisation per host over time, small scenario) and sim-daily.png (the daily farm) into this directory")
	fs.BoolVar(&opts.quick, "quick", false, "a hundredth of the connections (the daily farms: a 4-hour day, a quarter of them), for smoke runs")
	fs.IntVar(&opts.parallel, "parallel", runtime.GOMAXPROCS(0), "policies simulated at once")
	fs.StringVar(&opts.profile, "cpuprofile", "", "write a CPU profile to this file")
	fs.IntVar(&opts.haproxies, "haproxies", 0, "HAProxy instances (1 to 8; 0 keeps each scenario's 3)")
	fs.Float64Var(&opts.referenceScale, "reference-scale", 1, "multiply the policy's reference capacity, to try a misconfigured one")
	p := &opts.policy
	fs.Float64Var(&p.DeadBand, "dead-band", p.DeadBand, "policy: relative weight change not reported")
	fs.Float64Var(&p.MaxStep, "max-step", p.MaxStep, "policy: largest relative weight change a step")
	fs.DurationVar(&p.Smoothing, "smoothing", p.Smoothing, "policy: time constant of the capacity EWMA")
	fs.DurationVar(&p.Blackout, "blackout", p.Blackout, "policy: time after start without a weight")
	if err := fs.Parse(args); err != nil {
		return opts, err
	}
	if fs.NArg() > 0 {
		return opts, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if _, err := selectScenarios(opts.scenario); err != nil {
		return opts, err
	}
	if opts.referenceScale <= 0 {
		return opts, fmt.Errorf("-reference-scale %v: want more than 0", opts.referenceScale)
	}
	if opts.parallel < 1 {
		return opts, fmt.Errorf("-parallel %d: want at least 1", opts.parallel)
	}
	return opts, nil
}

func run(opts options, stdout, stderr io.Writer) error {
	var auto *AutoscaledResult
	if opts.scenario == "all" || opts.scenario == "autoscaled" {
		r, err := runAutoscaled(opts.seed)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "autoscaled: %.2f s\n", r.WallSeconds)
		auto = &r
	}
	daily, err := runDailies(opts, stderr)
	if err != nil {
		return err
	}
	selected, err := selectScenarios(opts.scenario)
	if err != nil {
		return err
	}
	var all []ScenarioResult
	for _, sc := range selected {
		if opts.quick {
			sc = sc.quick()
		}
		if opts.haproxies > 0 {
			sc.HAProxies = opts.haproxies
		}
		record := opts.plotDir != "" && sc.Name == "small"
		sr, err := runScenario(sc, opts.seed, opts.policy, opts.referenceScale, record, opts.parallel)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "%s: %.2f s\n", sc, sr.WallSeconds)
		if record {
			path := filepath.Join(opts.plotDir, "sim-utilisation.png")
			if err := plotUtilisation(sr, path); err != nil {
				return fmt.Errorf("plotting %s: %w", path, err)
			}
			fmt.Fprintf(stderr, "wrote %s\n", path)
		}
		all = append(all, sr)
	}
	if opts.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Seed       uint64            `json:"seed"`
			Policy     policyParams      `json:"policy"`
			Scenarios  []ScenarioResult  `json:"scenarios"`
			Autoscaled *AutoscaledResult `json:"autoscaled,omitempty"`
			Daily      []DailyResult     `json:"daily,omitempty"`
		}{opts.seed, paramsOf(opts.policy), all, auto, daily})
	}
	if len(all) > 0 {
		if err := writeTable(stdout, opts.seed, opts.policy, all); err != nil {
			return err
		}
	}
	sep := len(all) > 0
	if auto != nil {
		if sep {
			fmt.Fprintln(stdout)
		}
		if err := writeAutoscaled(stdout, opts.seed, *auto); err != nil {
			return err
		}
		sep = true
	}
	for _, r := range daily {
		if sep {
			fmt.Fprintln(stdout)
		}
		if err := writeDaily(stdout, r); err != nil {
			return err
		}
		sep = true
	}
	return nil
}

// runDailies runs the daily farms the options select, and plots the one
// with the speed mix when asked to.
func runDailies(opts options, stderr io.Writer) ([]DailyResult, error) {
	var out []DailyResult
	for _, name := range []string{"daily", "daily-equal"} {
		if opts.scenario != "all" && opts.scenario != name {
			continue
		}
		c := dailyConfig
		c.EqualHosts = name == "daily-equal"
		if opts.quick {
			c = c.quick()
		}
		r, err := runDaily(c, opts.seed, opts.parallel)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(stderr, "%s: %.2f s\n", name, r.WallSeconds)
		if opts.plotDir != "" && !c.EqualHosts {
			path := filepath.Join(opts.plotDir, "sim-daily.png")
			if err := plotDaily(r, path); err != nil {
				return nil, fmt.Errorf("plotting %s: %w", path, err)
			}
			fmt.Fprintf(stderr, "wrote %s\n", path)
		}
		out = append(out, r)
	}
	return out, nil
}

func selectScenarios(name string) ([]Scenario, error) {
	switch name {
	case "all":
		return scenarios, nil
	case "autoscaled", "daily", "daily-equal": // not Scenarios: runAutoscaled, runDaily
		return nil, nil
	}
	for _, sc := range scenarios {
		if sc.Name == name {
			return []Scenario{sc}, nil
		}
	}
	names := []string{"all", "autoscaled", "daily", "daily-equal"}
	for _, sc := range scenarios {
		names = append(names, sc.Name)
	}
	return nil, fmt.Errorf("unknown scenario %q: want one of %s", name, strings.Join(names, ", "))
}

// runScenario simulates every policy on the same fleet and arrivals, at
// most parallel of them at once.
func runScenario(sc Scenario, seed uint64, cfg hpolicy.PolicyConfig, referenceScale float64, record bool, parallel int) (ScenarioResult, error) {
	fl := newFleet(sc, seed)
	reference := fl.referenceCapacity(cfg.Targets.CPU)
	if sc.Reference > 0 {
		reference = sc.Reference
	}
	cfg.ReferenceCapacity = max(1, int(math.Round(referenceScale*float64(reference))))
	sr := ScenarioResult{
		Scenario:          sc,
		ReferenceCapacity: cfg.ReferenceCapacity,
		Results:           make([]Result, len(sc.policies())),
		Speeds:            fl.speeds,
		DrainedHost:       fl.drained,
		NoisyHost:         fl.noisy,
	}
	start := time.Now()
	var g errgroup.Group
	g.SetLimit(parallel)
	// The slowest policies (leastconn's tree, the agents) go first so that
	// they overlap.
	pols := sc.policies()
	for i := len(pols) - 1; i >= 0; i-- {
		pol := pols[i]
		g.Go(func() error {
			s, err := newSimulation(sc, pol, cfg, seed, record)
			if err != nil {
				return err
			}
			sr.Results[i] = s.run()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return sr, err
	}
	sr.WallSeconds = time.Since(start).Seconds()
	return sr, nil
}
