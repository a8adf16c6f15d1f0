package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/hafeed/hafeed/haproxy"
	"github.com/hafeed/hafeed/metrics"
)

// demoLoad is a lighter load than the benchmark's: 20 hot clients and 300
// lazy ones, about a third of a core of work.
func demoLoad() loadSpec {
	l := defaultLoad()
	l.HotClients, l.LazyClients = 20, 300
	l.HotRamp, l.LazyStart, l.LazyRamp = 2*time.Second, 2*time.Second, 5*time.Second
	l.Churn = 0.02
	l.BudgetCores = 0.25
	l.ShedRate = 20
	return l
}

// demo is the state of the live view.
type demo struct {
	w     io.Writer
	tty   bool
	f     *farm
	total time.Duration

	mu        sync.Mutex
	narration []string
}

// say adds one line to the narration.
func (d *demo) say(format string, args ...any) {
	at := time.Duration(0)
	if d.f != nil && !d.f.start.IsZero() {
		at = time.Since(d.f.start)
	}
	line := fmt.Sprintf("%s  %s", clock(at), fmt.Sprintf(format, args...))
	d.mu.Lock()
	d.narration = append(d.narration, line)
	d.mu.Unlock()
	if !d.tty {
		fmt.Fprintln(d.w, line)
	}
}

func clock(d time.Duration) string {
	s := int(d.Round(time.Second).Seconds())
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// demoRow is one backend in the live table.
type demoRow struct {
	name, reply, status string
	speed               float64
	weight, conns       int
	cpu                 float64
	// utilisation is the agent's last sample: CPU over the budget.
	utilisation float64
}

// runDemo starts HAProxy, three backends with their agents, a spare and
// clients, shows a live table while it drains ws2 and adds ws4, then stops
// everything; Ctrl-C stops it early.
func runDemo(ctx context.Context, self string, opts options, w io.Writer) (err error) {
	d := &demo{w: w, total: opts.demoFor}
	if f, ok := w.(*os.File); ok {
		d.tty = isatty.IsTerminal(f.Fd())
	}
	if err := checkHAProxy(); err != nil {
		return err
	}
	fmt.Fprintln(w, "hafeed demo: HAProxy (leastconn + agent-check), 3 WebSocket backends with an agent each, a spare, and clients; about", opts.demoFor.Round(time.Second))
	fmt.Fprintln(w, "It runs everything from a temporary folder on 127.0.0.1, installs nothing, and stops every process it started on exit or Ctrl-C.")
	p, err := prepare(ctx, self, demoLoad(), w)
	if p != nil {
		defer func() {
			n := 0
			if p.env != nil {
				n = p.env.sup.Running()
				if stopErr := p.env.stopAll(); stopErr != nil {
					fmt.Fprintf(w, "stopping: %v\n", stopErr)
					err = cmp.Or(err, stopErr)
				}
			}
			if d.tty {
				fmt.Fprint(w, "\033[?25h")
			}
			if err != nil {
				fmt.Fprintf(w, "logs of every process: %s\n", filepath.Join(p.tmp, "logs"))
				return
			}
			os.RemoveAll(p.tmp)
			fmt.Fprintf(w, "stopped the %d processes the demo started and removed %s\n", n, p.tmp)
		}()
	}
	if err != nil {
		return err
	}
	e := p.env
	e.progress = io.Discard
	sc := scenario{Name: "demo", Title: "demo", Backends: farmOf(true)}
	pol := policy{Name: "hafeed+rebalance", Balance: "leastconn", Agent: true, Rebalance: true}
	fmt.Fprintln(w, "starting HAProxy, the backends and their agents...")
	f, err := startFarm(ctx, e, sc, pol)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	d.f = f
	if err := f.startClients(ctx, 1); err != nil {
		return err
	}
	l := e.load
	d.say("HAProxy on %s, balance leastconn; each backend's hafeed answers its agent-check every 1s", f.hp.frontend)
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

// run drives the timeline and refreshes the view every second.
func (d *demo) run(ctx context.Context) error {
	f := d.f
	host := &metrics.HostCPU{}
	f.take(ctx, host)
	drainAt, addAt := d.total/3, d.total*5/9
	var drained, added, lowered, filled bool
	drainDone := make(chan string, 1)
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case msg := <-drainDone:
			d.say("%s", msg)
		case <-ticker.C:
		}
		elapsed := time.Since(f.start)
		rows := d.rows(ctx, host)
		clients := f.clients.latest()
		if err := f.childFailed(); err != nil {
			return err
		}

		if !lowered && rows[0].weight > 0 && rows[1].weight > 0 && float64(rows[0].weight) < 0.7*float64(rows[1].weight) && elapsed > 12*time.Second {
			lowered = true
			d.say("hafeed weighs slow ws1 at %d%%, ws2 at %d%%: leastconn now sends ws1 fewer sockets",
				rows[0].weight, rows[1].weight)
		}
		if !drained && elapsed >= drainAt {
			drained = true
			rate := f.env.load.ShedRate
			d.say("draining ws2: hafeed drain --wait --shed-rate %g (no new sockets; %g/s closed, clients reconnect)", rate, rate)
			go func() {
				out, err := f.agentOf("ws2").cli(ctx, "drain", "--wait", "--shed-rate", fmt.Sprint(rate), "--timeout", "60s")
				switch {
				case ctx.Err() != nil:
				case err != nil:
					drainDone <- "drain failed: " + err.Error()
				default:
					drainDone <- fmt.Sprintf("ws2 %s: it could be stopped or upgraded now", strings.TrimSpace(out))
				}
			}()
		}
		if !added && elapsed >= addAt {
			added = true
			d.say("adding ws4: hafeed ready; rebalance moves the others' excess sockets to it")
			if _, err := f.agentOf("ws4").cli(ctx, "ready"); err != nil {
				d.say("hafeed ready failed: %v", err)
			}
		}
		if added && !filled && rows[3].conns > 0 {
			total, weights := 0, 0
			for _, r := range rows {
				if strings.HasPrefix(r.status, "UP") {
					total += r.conns
					weights += r.weight
				}
			}
			if weights > 0 && float64(rows[3].conns) >= 0.9*float64(total*rows[3].weight)/float64(weights) {
				filled = true
				d.say("ws4 holds %d sockets, its share by weight, %v after it was added", rows[3].conns, (elapsed - addAt).Round(time.Second))
			}
		}
		d.render(rows, clients)
		if elapsed >= d.total {
			t := clients.total()
			d.say("done: %d messages echoed, %d lost, %d clients cut off for over 5 s; stopping", t.Messages, t.Lost+t.Mismatched, t.Failures)
			if d.tty {
				d.render(rows, clients)
			}
			return nil
		}
	}
}

// rows reads each backend's agent, HAProxy's view of it and its load.
func (d *demo) rows(ctx context.Context, host *metrics.HostCPU) []demoRow {
	f := d.f
	s := f.take(ctx, host)
	var stats map[string]haproxy.Stat
	stats, _ = f.hp.servers(ctx)
	rows := make([]demoRow, len(f.backends))
	var wg sync.WaitGroup
	for i, b := range f.backends {
		rows[i] = demoRow{name: b.spec.Name, speed: b.spec.Speed, conns: s.Conns[i], cpu: s.CPU[i], weight: -1}
		if st, ok := stats[b.spec.Name]; ok {
			rows[i].status, rows[i].weight = st.Status, st.Weight
		}
		wg.Go(func() {
			if st, err := f.agents[i].status(ctx); err == nil {
				rows[i].reply = st.Reply
				if st.Sample != nil {
					rows[i].utilisation = st.Sample.Utilisation
				}
			} else {
				rows[i].reply = "?"
			}
		})
	}
	wg.Wait()
	return rows
}

// render draws the live view: on a terminal the whole screen each second,
// otherwise a compact table every 10 seconds.
func (d *demo) render(rows []demoRow, clients clientsReport) {
	elapsed := time.Duration(0)
	if !d.f.start.IsZero() {
		elapsed = time.Since(d.f.start)
	}
	if !d.tty {
		if rows == nil || int(elapsed.Round(time.Second).Seconds())%10 != 0 {
			return
		}
	}
	var b strings.Builder
	line := func(format string, args ...any) {
		fmt.Fprintf(&b, format, args...)
		if d.tty {
			b.WriteString("\033[K")
		}
		b.WriteByte('\n')
	}
	if d.tty {
		b.WriteString("\033[H")
	}
	line("hafeed demo — HAProxy %s, leastconn + agent-check every 1s              %s / %s   (Ctrl-C stops)",
		strings.TrimPrefix(strings.Fields(haproxyVersionCached())[2], "version "), clock(elapsed), clock(d.total))
	line("")
	line("  %-7s %-6s %-18s %-15s %6s %6s  %-31s %s", "backend", "speed", "agent reply", "HAProxy status", "weight", "conns", "CPU (cores)", "utilisation")
	for _, r := range rows {
		weight := "-"
		if r.weight >= 0 {
			weight = fmt.Sprint(r.weight)
		}
		cpu := "-"
		if !math.IsNaN(r.cpu) {
			cpu = fmt.Sprintf("%.2f %s", r.cpu, bar(r.cpu, 0.5, 20))
		}
		line("  %-7s %-6g %-18s %-15s %6s %6d  %-31s %4.0f%%", r.name, r.speed, truncateText(r.reply, 18), truncateText(r.status, 15), weight, r.conns, cpu, 100*r.utilisation)
	}
	t := clients.total()
	line("  utilisation: the agent's CPU sample over a %.2f-core budget; weight: HAProxy's, set by the reply", d.f.env.load.BudgetCores)
	line("")
	line("  clients: %d of %d connected · %d messages echoed · %d lost · %d reconnects · %d cut off >5s",
		t.Connected, t.Clients, t.Messages, t.Lost+t.Mismatched, t.Reconnects, t.Failures)
	if d.tty {
		line("")
		line("  what happened:")
		d.mu.Lock()
		for _, n := range d.narration {
			line("  %s", n)
		}
		d.mu.Unlock()
		b.WriteString("\033[J")
	}
	fmt.Fprint(d.w, b.String())
}

// bar draws v of full as a bar of width cells.
func bar(v, full float64, width int) string {
	n := int(math.Round(v / full * float64(width)))
	n = min(max(n, 0), width)
	return strings.Repeat("█", n) + strings.Repeat("·", width-n)
}

func truncateText(s string, n int) string {
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

var (
	versionOnce sync.Once
	versionLine string
)

// haproxyVersionCached is haproxyVersion, run once.
func haproxyVersionCached() string {
	versionOnce.Do(func() {
		versionLine = haproxyVersion()
		if len(strings.Fields(versionLine)) < 3 {
			versionLine = "HAProxy version ?"
		}
	})
	return versionLine
}
