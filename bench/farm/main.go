package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

// options are the command's flags.
type options struct {
	conns        int
	hosts        int
	haproxies    int
	connectRate  int
	dialTimeout  time.Duration
	interval     time.Duration
	settle       time.Duration
	window       time.Duration
	shedRate     int
	drainTimeout time.Duration
	rebalanceMax time.Duration
	after        time.Duration
	probe        bool
	quick        bool
	out          string
	jsonOut      string
	hafeedBin    string
	twWait       time.Duration
	timeout      time.Duration
	keep         bool
	from         string
}

func main() {
	if ok, err := runRole(os.Args[1:]); ok {
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench-farm role %s: %v\n", os.Args[1], err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(run())
}

func run() int {
	var o options
	flag.IntVar(&o.conns, "conns", 100000, "WebSocket clients, spread evenly over the hosts in service")
	flag.IntVar(&o.hosts, "hosts", 4, "hosts in service at the start; one more joins at the end")
	flag.IntVar(&o.haproxies, "haproxies", 0, "HAProxy processes sharing the frontend (0: as many as hold -conns under the descriptor limit)")
	flag.IntVar(&o.connectRate, "connect-rate", 1000, "new connections a second while the clients connect")
	flag.DurationVar(&o.dialTimeout, "dial-timeout", 30*time.Second, "a client gives up a connection attempt (handshake included) after this long and tries again: short ones turn a busy machine's slow handshakes into a storm of retries")
	flag.DurationVar(&o.interval, "interval", time.Minute, "each client sends a message, echoed and checked, this often")
	flag.DurationVar(&o.settle, "settle", 10*time.Second, "wait after the clients have connected before measuring the agents")
	flag.DurationVar(&o.window, "window", time.Minute, "steady window over which the agents' CPU and RSS are measured (at least 30s)")
	flag.IntVar(&o.shedRate, "shed-rate", 1000, "hafeed drain --shed-rate")
	flag.DurationVar(&o.drainTimeout, "drain-timeout", 2*time.Minute, "hafeed drain --timeout")
	flag.DurationVar(&o.rebalanceMax, "rebalance-timeout", 3*time.Minute, "how long the added host may take to reach 90% of its share")
	flag.DurationVar(&o.after, "after", 20*time.Second, "how long to watch the farm after the added host reached 90% of its share")
	flag.BoolVar(&o.probe, "probe", true, "first measure the most one HAProxy holds under the descriptor limit")
	flag.BoolVar(&o.quick, "quick", false, "a smoke run: 10,000 clients, a 30s window (flags given explicitly still win)")
	flag.StringVar(&o.out, "out", "", "folder for the plot (farm-hosts.png); none when empty")
	flag.StringVar(&o.jsonOut, "json-out", "", "file for the results with every sample, as JSON")
	flag.StringVar(&o.hafeedBin, "hafeed", "", "hafeed binary (default: go build ./cmd/hafeed into the temp dir)")
	flag.DurationVar(&o.twWait, "tw-wait", 75*time.Second, "wait up to this long for TIME-WAIT sockets of an earlier run to expire (every agent's count walks them)")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Minute, "bound on the whole run")
	flag.BoolVar(&o.keep, "keep", false, "keep the temp dir (configurations and logs) and print where it is")
	flag.StringVar(&o.from, "from", "", "run nothing: print the results of an earlier -json-out file, and plot them with -out")
	flag.Parse()
	if o.from != "" {
		return again(o)
	}
	if o.quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["conns"] {
			o.conns = 10000
		}
		if !set["window"] {
			o.window = 30 * time.Second
		}
		if !set["settle"] {
			o.settle = 5 * time.Second
		}
		if !set["after"] {
			o.after = 10 * time.Second
		}
	}
	if flag.NArg() > 0 || o.conns < 100 || o.hosts < 2 || o.connectRate < 1 || o.shedRate < 1 || o.window < time.Second {
		flag.Usage()
		return 2
	}

	tctx, cancel := context.WithTimeoutCause(context.Background(), o.timeout, fmt.Errorf("run took longer than -timeout %s", o.timeout))
	defer cancel()
	ctx, stop := signal.NotifyContext(tctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	res, err := bench(ctx, o)
	if err != nil {
		if ctx.Err() != nil && tctx.Err() == nil {
			err = fmt.Errorf("interrupted: %w", err)
		}
		logf("%v", err)
	}
	if res != nil && res.Plan.Conns > 0 {
		if o.jsonOut != "" {
			if werr := writeJSON(o.jsonOut, res); werr != nil {
				logf("%v", werr)
			} else {
				logf("results with every sample in %s", o.jsonOut)
			}
		}
		// Only a whole run's plot: a failed or interrupted one would
		// replace the tracked docs/img/farm-hosts.png with part of a run
		// (its JSON stays, and -from plots it).
		if o.out != "" && len(res.Samples) > 0 && err == nil {
			if path, perr := plotHosts(o.out, res); perr != nil {
				logf("plot: %v", perr)
			} else {
				logf("plot in %s", path)
			}
		}
		if werr := res.writeMarkdown(os.Stdout); werr != nil {
			logf("%v", werr)
		}
	}
	if err != nil {
		return 1
	}
	if missed := res.missed(); len(missed) > 0 {
		logf("targets missed: %v", missed)
	}
	return 0
}

// again prints and plots the results of an earlier run.
func again(o options) int {
	b, err := os.ReadFile(o.from)
	if err != nil {
		logf("%v", err)
		return 1
	}
	var res results
	if err := json.Unmarshal(b, &res); err != nil {
		logf("%s: %v", o.from, err)
		return 1
	}
	if o.out != "" && len(res.Samples) > 0 {
		path, err := plotHosts(o.out, &res)
		if err != nil {
			logf("plot: %v", err)
			return 1
		}
		logf("plot in %s", path)
	}
	if err := res.writeMarkdown(os.Stdout); err != nil {
		logf("%v", err)
		return 1
	}
	return 0
}

func writeJSON(path string, res *results) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(res, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench-farm %s: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
