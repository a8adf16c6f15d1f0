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
	"syscall"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/hafeed/hafeed/internal/farm"
)

func main() {
	if ok, err := farm.RunRole(); ok {
		if err != nil {
			fmt.Fprintln(os.Stderr, "demo role:", err)
			os.Exit(1)
		}
		return
	}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	duration := fs.Duration("duration", 90*time.Second, "how long the demo runs")
	switch err := fs.Parse(os.Args[1:]); {
	case errors.Is(err, flag.ErrHelp):
		return
	case err != nil:
		os.Exit(2)
	case fs.NArg() > 0:
		fmt.Fprintf(os.Stderr, "demo: unexpected arguments %q\n", fs.Args())
		os.Exit(2)
	case *duration <= 0:
		fmt.Fprintln(os.Stderr, "demo: -duration must be positive")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	self, err := os.Executable()
	if err == nil {
		err = run(ctx, self, *duration, os.Stdout)
	}
	switch {
	case errors.Is(err, farm.ErrNoHAProxy):
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	case err != nil && ctx.Err() != nil:
		fmt.Fprintln(os.Stderr, "demo: interrupted; every process it started is stopped")
		os.Exit(130)
	case err != nil:
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// demoLoad is a lighter load than the benchmark's: 20 hot clients and 300
// lazy ones, about a third of a core of work.
func demoLoad() farm.Load {
	l := farm.DefaultLoad()
	l.HotClients, l.LazyClients = 20, 300
	l.HotRamp, l.LazyStart, l.LazyRamp = 2*time.Second, 2*time.Second, 5*time.Second
	l.Churn = 0.02
	l.BudgetCores = 0.25
	l.ShedRate = 20
	return l
}

// run starts HAProxy, three backends with their agents, a spare and
// clients, shows a live view while it drains ws2 and adds ws4, then stops
// everything and removes its folders; Ctrl-C stops it early.
func run(ctx context.Context, self string, total time.Duration, w io.Writer) (err error) {
	d := &demo{w: w, total: total}
	if f, ok := w.(*os.File); ok {
		d.tty = isatty.IsTerminal(f.Fd())
	}
	if err := farm.CheckHAProxy(); err != nil {
		return err
	}
	fmt.Fprintln(w, "hafeed demo: HAProxy (leastconn + agent-check), 3 WebSocket backends with an agent each, a spare, and clients; about", total.Round(time.Second))
	fmt.Fprintln(w, "It runs everything from a temporary folder on 127.0.0.1, installs nothing, and stops every process it started on exit or Ctrl-C.")
	e, err := farm.Prepare(ctx, self, demoLoad(), w)
	var f *farm.Farm
	if e != nil {
		defer func() {
			n := e.Running()
			if f != nil {
				err = cmp.Or(err, f.Stop())
			}
			if stopErr := e.StopAll(); stopErr != nil {
				err = cmp.Or(err, stopErr)
			}
			if d.tty {
				fmt.Fprint(w, "\033[?25h")
			}
			if err != nil {
				fmt.Fprintf(w, "logs of every process: %s\n", e.LogDir())
				return
			}
			if err = os.RemoveAll(e.Dir); err != nil {
				return
			}
			fmt.Fprintf(w, "stopped the %d processes the demo started and removed %s\n", n, e.Dir)
		}()
	}
	if err != nil {
		return err
	}
	e.Progress = io.Discard
	fmt.Fprintln(w, "starting HAProxy, the backends and their agents...")
	f, err = farm.Start(ctx, e, farm.Spec{
		Name:     "demo",
		Backends: farm.DefaultBackends(true),
		Policy:   farm.Policy{Name: "hafeed+rebalance", Balance: "leastconn", Agent: true, Rebalance: true},
	})
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	d.f, d.load = f, e.Load
	if err := f.StartClients(ctx, 1); err != nil {
		return err
	}
	l := e.Load
	d.say("HAProxy on %s, balance leastconn; each backend's hafeed answers its agent-check every 1s", f.HAProxy().Frontend())
	d.say("ws1 is a slow host (a message costs it twice the CPU); ws4 waits in maintenance (hafeed maint)")
	d.say("%d hot clients (a message every %v) connect first, then %d lazy ones (every %v); %.0f%%/s churn",
		l.HotClients, l.HotInterval, l.LazyClients, l.LazyInterval, 100*l.Churn)
	if d.tty {
		fmt.Fprint(w, "\033[?25l\033[2J")
	}
	err = d.run(ctx)
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(w, "\ninterrupted: stopping everything")
		return nil
	}
	return err
}
