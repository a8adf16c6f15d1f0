package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/hafeed/hafeed/haproxy"
	"github.com/hafeed/hafeed/internal/farm"
	"github.com/hafeed/hafeed/metrics"
)

// demo is the state of the live view.
type demo struct {
	w     io.Writer
	tty   bool
	f     *farm.Farm
	load  farm.Load
	total time.Duration

	mu        sync.Mutex // guards narration
	narration []string
}

// say adds one line to the narration.
func (d *demo) say(format string, args ...any) {
	at := time.Duration(0)
	if d.f != nil {
		at = d.f.Elapsed()
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

// run drives the timeline and refreshes the view every second.
func (d *demo) run(ctx context.Context) error {
	f := d.f
	host := &metrics.HostCPU{}
	f.Take(ctx, host)
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
		elapsed := f.Elapsed()
		rows := d.rows(ctx, host)
		clients := f.Clients()
		if err := f.Failed(); err != nil {
			return err
		}

		if !lowered && rows[0].weight > 0 && rows[1].weight > 0 && float64(rows[0].weight) < 0.7*float64(rows[1].weight) && elapsed > 12*time.Second {
			lowered = true
			d.say("hafeed weighs slow ws1 at %d%%, ws2 at %d%%: leastconn now sends ws1 fewer sockets",
				rows[0].weight, rows[1].weight)
		}
		if !drained && elapsed >= drainAt {
			drained = true
			rate := d.load.ShedRate
			d.say("draining ws2: hafeed drain --wait --shed-rate %g (no new sockets; %g/s closed, clients reconnect)", rate, rate)
			go func() {
				out, err := f.Agent("ws2").CLI(ctx, "drain", "--wait", "--shed-rate", fmt.Sprint(rate), "--timeout", "60s")
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
			if _, err := f.Agent("ws4").CLI(ctx, "ready"); err != nil {
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
			t := clients.Total()
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
	s := f.Take(ctx, host)
	var stats map[string]haproxy.Stat
	stats, _ = f.HAProxy().Servers(ctx)
	backends, agents := f.Backends(), f.Agents()
	rows := make([]demoRow, len(backends))
	var wg sync.WaitGroup
	for i, b := range backends {
		rows[i] = demoRow{name: b.Name, speed: b.Speed, conns: s.Conns[i], cpu: s.CPU[i], weight: -1}
		if st, ok := stats[b.Name]; ok {
			rows[i].status, rows[i].weight = st.Status, st.Weight
		}
		wg.Go(func() {
			if st, err := agents[i].Status(ctx); err == nil {
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
func (d *demo) render(rows []demoRow, clients farm.ClientsReport) {
	elapsed := d.f.Elapsed()
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
	t := clients.Total()
	line("  utilisation: the agent's CPU sample over a %.2f-core budget; weight: HAProxy's, set by the reply", d.load.BudgetCores)
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

// haproxyVersionCached is farm.HAProxyVersion, run once.
func haproxyVersionCached() string {
	versionOnce.Do(func() {
		versionLine = farm.HAProxyVersion()
		if len(strings.Fields(versionLine)) < 3 {
			versionLine = "HAProxy version ?"
		}
	})
	return versionLine
}
