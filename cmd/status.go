package cmd

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/agent/policy"
	"github.com/hafeed/hafeed/agent/sampler"
	"github.com/hafeed/hafeed/internal/termsafe"
)

func newStatusCmd() *cobra.Command {
	var flags configFlags
	var asJSON bool
	c := &cobra.Command{
		Use:   "status",
		Short: "Show the running agent's state, reply and load",
		Long: `Ask the running agent what it reports to HAProxy and why: the admin state and
since when, the reply line, the load inputs and score of the last sample, and
the HAProxy addresses that poll it. --config and --control-socket locate the
agent. The sample shown is the agent's own, taken with the sources of its
configuration. The source flags of ` + "`hafeed run`" + ` (--ports, --agent-listen) add a
local sample taken with them, as ` + "`hafeed sample`" + ` takes it, also when the agent is
not running (status then exits 3).`,
		Example: `  hafeed status
  hafeed status --json | jq .sample.weight_percent
  hafeed status --config /etc/hafeed/hafeed.yaml
  hafeed status --ports 8080,8443   # and a local sample of those ports`,
		Args:        noArgs,
		Annotations: clientNote(),
		RunE: func(c *cobra.Command, _ []string) error {
			resp, err := callAgent(c, flags.socket(c), control.Request{Command: control.CommandStatus})
			down := errors.Is(err, control.ErrAgentUnreachable)
			if err != nil && !down {
				return err
			}
			st := &control.Status{}
			if !down {
				st = resp.Status
			}
			if flags.sourcesGiven(c) {
				// What the agent would see, or what it sees on other ports.
				cfg, _, lerr := flags.load(c)
				if lerr == nil {
					var s sampler.Sample
					if s, lerr = takeSample(c, cfg); lerr == nil {
						wire := control.SampleOf(s)
						st.LocalSample = &wire
					}
				}
				if lerr != nil && !down {
					return lerr
				}
			}
			switch {
			case asJSON && (!down || st.LocalSample != nil):
				if werr := writeJSON(c, st); werr != nil {
					return werr
				}
			case down && st.LocalSample != nil:
				tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "agent	not running: a local sample taken with the source flags follows")
				printSample(tw, st.LocalSample, styleFor(c.OutOrStdout()))
				tw.Flush()
			case !asJSON && !down:
				printStatus(c.OutOrStdout(), st, time.Now(), styleFor(c.OutOrStdout()))
			}
			return err
		},
	}
	flags.register(c, clientFlags|withSources)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON (stable field names) instead of a table")
	return c
}

func printStatus(w io.Writer, st *control.Status, now time.Time, sty style) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	// A row is one line, whatever its values hold.
	row := func(k, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t%s\n", termsafe.Line(k), termsafe.Line(fmt.Sprintf(format, args...)))
	}
	row("admin", "%s (since %s, %s ago)", sty.admin(st.Admin), st.Since.Local().Format(time.DateTime), ago(now, st.Since))
	if st.AdminReason != "" {
		row("reason", "%s", st.AdminReason)
	}
	if st.StateError != "" {
		row("state error", "%s", sty.bad(st.StateError))
	}
	ann := ""
	if st.AnnouncingReady {
		ann = " (announcing ready to every polling HAProxy)"
	}
	row("reply", "%s%s", st.Reply, ann)
	if st.Sample != nil {
		printSample(tw, st.Sample, sty)
	}
	if st.LocalSample != nil {
		row("local sample", "taken by this command with its source flags:")
		printSample(tw, st.LocalSample, sty)
	}
	for _, e := range st.HAProxy {
		text := fmt.Sprintf("%s servers %s", e.Runtime, strings.Join(e.Servers, ","))
		if len(e.Servers) == 0 {
			text = e.Runtime + " (no server of this host found in it)"
		}
		if e.Applied != "" {
			text += fmt.Sprintf(", pushed %s %s ago", e.Applied, ago(now, e.AppliedAt))
		}
		if e.Error != "" {
			text += ": " + sty.bad(e.Error)
		}
		row("haproxy", "%s", text)
	}
	if s := st.Shed; s != nil {
		state := "running"
		if !s.Active {
			state = s.Ended
		}
		text := fmt.Sprintf("%s at %.0f/s via %s: %d closed, %s", s.Reason, s.Rate, s.Via, s.Closed, state)
		if s.LastError != "" {
			text += ": " + sty.bad(s.LastError)
		}
		row("shedding", "%s", text)
	}
	if r := st.Rebalance; r != nil {
		text := fmt.Sprintf("%s (%d shed so far)", r.Reason, r.Shed)
		if r.Error != "" {
			text += ": " + sty.bad(r.Error)
		}
		row("rebalance", "%s", text)
	}
	if st.Lines > 1 {
		row("lines", "%d server lines of each HAProxy point at this host: each gets 1/%d of its weight", st.Lines, st.Lines)
	}
	for _, sp := range st.SourcePorts {
		text := fmt.Sprintf("%d connections to %s of %s's %s ports (%.0f%%; range from %s)", sp.Connections, sp.Local, sp.Peer, sp.Range, 100*sp.Usage, sp.RangeFrom)
		if sp.Maxconn > 0 {
			text += fmt.Sprintf("; its lines get maxconn %d", sp.Maxconn)
		}
		if sp.WeightPercent > 0 {
			text += fmt.Sprintf(" and weight %d%%, the other lines the rest of the host's share", sp.WeightPercent)
		}
		row("source "+sp.Peer, "%s", text)
	}
	if len(st.Peers) == 0 {
		row("haproxy peers", "none polled in the last minute")
	}
	for i, p := range st.Peers {
		k := ""
		if i == 0 {
			k = "haproxy peers"
		}
		row(k, "%s (%d polls, last %s ago)", p.Addr, p.Polls, ago(now, p.LastPoll))
	}
	row("agent", "pid %d, version %s, agent-check %s, up %s", st.PID, st.Version, st.AgentListen, ago(now, st.StartedAt))
	cfg := st.ConfigFile
	if cfg == "" {
		cfg = "none (defaults)"
	}
	row("files", "config %s, state %s, control %s", cfg, st.StateFile, st.ControlSocket)
	if len(st.RestartNeeded) > 0 {
		row("restart needed", "%s", sty.bad(strings.Join(st.RestartNeeded, ", ")+" changed in the config; the values above stay until a restart"))
	}
	tw.Flush()
}

func printSample(tw *tabwriter.Writer, s *control.Sample, sty style) {
	// A row is one line, whatever its values hold.
	row := func(k, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t%s\n", termsafe.Line(k), termsafe.Line(fmt.Sprintf(format, args...)))
	}
	ports := "none listening"
	if len(s.Ports) > 0 {
		ps := make([]string, len(s.Ports))
		for i, p := range s.Ports {
			ps[i] = strconv.Itoa(int(p))
		}
		ports = strings.Join(ps, ",")
	}
	counted := ""
	if c := s.Signals[policy.SignalConnections]; c.Stale && !c.At.IsZero() {
		counted = fmt.Sprintf(", counted %s ago: a count takes %s (sources.count_budget)", s.At.Sub(c.At).Round(time.Second), c.Duration.Round(time.Millisecond))
	}
	row("connections", "%d established on ports %s (via %s%s)", s.Connections, ports, s.ConnMethod, counted)
	names := slices.Sorted(maps.Keys(s.Signals))
	for _, name := range names {
		if name == policy.SignalConnections {
			continue
		}
		sig := s.Signals[name]
		var text string
		switch {
		case sig.At.IsZero() && sig.Error == "":
			text = "not measured yet"
		case sig.At.IsZero():
			text = "unavailable"
		default:
			text = fmt.Sprintf("%.1f%%", 100*sig.Value)
			if sig.Target > 0 {
				text += fmt.Sprintf(" (target %.0f%%)", 100*sig.Target)
			} else {
				text += " (no target: not scored)"
			}
			if sig.Stale {
				text += sty.warn(fmt.Sprintf(", STALE since %s", sig.At.Local().Format("15:04:05")))
			}
		}
		if sig.Error != "" {
			text += ": " + sty.bad(sig.Error)
		}
		row(name, "%s", text)
	}
	row("utilisation", "%.3f of target (bottleneck: %s)", s.Utilisation, orNone(s.Bottleneck))
	if m := s.Model; m.Cost > 0 {
		how := "assumed: not seen without connections yet"
		if m.Measured {
			how = "measured while the host held no connections"
		}
		row("load model", "baseline %.3f (%s), connections cost %.2f of the reference's, headroom %.0f%%, connections cause %.0f%% of the load",
			m.Baseline, how, m.Cost, 100*m.Headroom, 100*m.Share)
	}
	if s.Capacity > 0 {
		row("capacity", "%.0f connections at target", s.Capacity)
	}
	if s.SuggestedReference > 0 {
		row("reference", "%s", sty.warn(fmt.Sprintf("the weight has sat out of range for %v: set policy.reference_capacity near %d on every host", policy.ReferenceAdviceAfter, s.SuggestedReference)))
	}
	weight := "not reported (HAProxy keeps its weight)"
	if s.WeightPercent > 0 {
		weight = fmt.Sprintf("%d%%", s.WeightPercent)
	}
	if s.SendMaxconn {
		weight += fmt.Sprintf(", maxconn %d", s.Maxconn)
	}
	row("weight", "%s", weight)
	row("why", "%s", s.Reason)
	row("sampled", "%s (took %s)", s.At.Local().Format("15:04:05.000"), s.Duration.Round(time.Microsecond))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "?"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		// The wall clock was set back since t: a negative age would read
		// as a typo.
		return "0s (the clock was set back since)"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

// style colours values on a terminal, unless NO_COLOR is set. The colours
// are written to w, as stand-ins if w strips escape sequences (safe.go).
type style struct {
	on bool
	w  io.Writer
}

func styleFor(w io.Writer) style {
	return style{on: isTerminal(w) && os.Getenv("NO_COLOR") == "", w: w}
}

func (s style) paint(code, text string) string {
	if !s.on {
		return text
	}
	return trusted(s.w, "\033["+code+"m") + text + trusted(s.w, "\033[0m")
}

func (s style) bad(text string) string  { return s.paint("31", text) }
func (s style) warn(text string) string { return s.paint("33", text) }

func (s style) admin(state string) string {
	switch state {
	case "ready":
		return s.paint("32", state)
	case "drain":
		return s.warn(state)
	}
	return s.bad(state)
}
