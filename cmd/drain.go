package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/agent/policy"
	"github.com/hafeed/hafeed/internal/termsafe"
)

// drainOptions are the flags of `hafeed drain` beyond the config flags.
type drainOptions struct {
	wait     bool
	timeout  time.Duration
	min      int
	shedRate float64
	asJSON   bool
	reason   string
}

func newDrainCmd() *cobra.Command {
	var flags configFlags
	var opts drainOptions
	c := &cobra.Command{
		Use:   "drain",
		Short: "Stop new connections to this host; existing ones stay",
		Long: `HAProxy sends no new connections to a drained server; established ones carry on.
The state is saved before this returns and survives restarts of the agent; with
runtime endpoints configured (haproxy[].runtime) HAProxy shows it at once.

--wait then waits until this host's established connections on the ports the
agent watches (sources.ports in its configuration) reach zero (or --min),
showing progress, and exits 0 when they do, or 1 with the remaining count after
--timeout; the host stays drained either way. --shed-rate closes the remaining
connections at that many per second, spread evenly with jitter, so clients
reconnect through HAProxy onto other hosts (shed.via: runtime closes them in
HAProxy, hook asks the application, kernel has the kernel abort the sockets on
sources.ports). Where the configuration has no way to close them, the drain
is still applied and waits for clients to leave, and a warning says so and
what to configure. Use it from a systemd ExecStop= or a deploy script before
stopping the WebSocket server. --timeout is kept by the clock, even when no
fresh connection count comes, and a status poll the agent cannot answer is
asked again until then; Ctrl-C stops the shedding this command started, and
the host stays drained.`,
		Example: `  hafeed drain
  hafeed drain --wait --timeout 10m
  hafeed drain --wait --shed-rate 100 --timeout 5m   # move sockets off, 100/s
  hafeed drain --wait --min 10                       # good enough at 10 left`,
		Args:        noArgs,
		Annotations: clientNote(),
		RunE: func(c *cobra.Command, _ []string) error {
			if !opts.wait && (c.Flags().Changed("timeout") || c.Flags().Changed("min") || c.Flags().Changed("shed-rate")) {
				return usageErr(errors.New("--timeout, --min and --shed-rate go with --wait"))
			}
			if opts.shedRate < 0 || opts.min < 0 || opts.timeout <= 0 {
				return usageErr(errors.New("--shed-rate and --min must not be negative, --timeout must be positive"))
			}
			if err := control.CheckReason(opts.reason); err != nil {
				return usageErr(fmt.Errorf("--reason: %w", err))
			}
			req := control.Request{Command: control.CommandDrain, Reason: opts.reason}
			if opts.wait {
				req.ShedRate, req.Min, req.Timeout = opts.shedRate, opts.min, opts.timeout
			}
			started := time.Now()
			socket := flags.socket(c)
			resp, err := callAgent(c, socket, req)
			if err != nil {
				return err
			}
			if !opts.wait {
				return printAdminResult(c, resp.Status, opts.asJSON)
			}
			if resp.Status.Warning != "" {
				fmt.Fprintln(c.ErrOrStderr(), "warning: "+termsafe.Line(resp.Status.Warning))
			}
			var job uint64
			if resp.Status.Shed != nil {
				job = resp.Status.Shed.Job
			}
			var drainCount time.Time
			if s := resp.Status.Sample; s != nil {
				drainCount = s.Signals[policy.SignalConnections].At
			}
			// Shedding asked for, and no job started: nothing on this
			// host closes connections (the warning above says what to
			// configure), and the wait is for clients to leave.
			unshed := opts.shedRate > 0 && job == 0
			return waitDrained(c, socket, opts, started, drainCount, job, unshed)
		},
	}
	flags.register(c, clientFlags)
	c.Flags().BoolVar(&opts.asJSON, "json", false, "print the agent's status as JSON")
	c.Flags().BoolVar(&opts.wait, "wait", false, "wait until the established connections reach --min (0)")
	c.Flags().DurationVar(&opts.timeout, "timeout", 10*time.Minute, "with --wait: give up after this long (exit 1)")
	c.Flags().IntVar(&opts.min, "min", 0, "with --wait: done when at most this many connections remain")
	c.Flags().Float64Var(&opts.shedRate, "shed-rate", 0, "with --wait: close remaining connections at this many per second (default: none, wait for clients to leave)")
	registerReason(c, &opts.reason)
	return c
}

// waitDrained polls the agent until few enough connections remain, and
// gives up at the timeout by the clock, whether or not a fresh count came.
// drainCount is when the count the drain's reply showed was taken; job is
// the shedding job the drain started (0: none): stopped when the wait ends
// without draining.
//
// A status poll that fails (the agent busy with another request, or
// restarting) is asked again until the timeout: the drain stands whatever
// the poll says, and giving up early would leave the job shedding behind a
// command that reported failure. unshed says that --shed-rate was asked
// for and nothing closes connections; the last line says so again.
func waitDrained(c *cobra.Command, socket string, opts drainOptions, started, drainCount time.Time, job uint64, unshed bool) error {
	ctx, cancel := commandContext(c)
	defer cancel()
	deadline := started.Add(opts.timeout)
	progress := newProgress(c.ErrOrStderr())
	defer progress.finish()
	left, ports := -1, ""
	var pollErr error // the last poll's failure; nil once one answers
	for {
		callDeadline := time.Now().Add(controlCallTimeout)
		if deadline.Before(callDeadline) {
			callDeadline = deadline
		}
		callCtx, callCancel := context.WithDeadline(ctx, callDeadline)
		resp, err := control.Call(callCtx, socket, control.Request{Command: control.CommandStatus})
		callCancel()
		switch {
		case ctx.Err() != nil:
			progress.finish()
			return interrupted(socket, job)
		case err != nil && !time.Now().Before(deadline):
			// Cut short by the wait's own deadline: the count before it stands.
		case err != nil:
			if pollErr == nil || pollErr.Error() != err.Error() {
				progress.finish()
				fmt.Fprintf(c.ErrOrStderr(), "asking the agent how many connections are left failed: %s; asking again until --timeout (the host stays drained)\n", termsafe.Line(err.Error()))
			}
			pollErr = err
		case err == nil:
			pollErr = nil
			st := resp.Status
			if st.Admin != "drain" {
				return fmt.Errorf("the drain was lifted (admin state is now %s) while waiting", termsafe.Line(st.Admin))
			}
			// Only a count taken after the drain began can say it is done.
			if s := st.Sample; s != nil && freshCount(s.Signals[policy.SignalConnections].At, drainCount) {
				left, ports = s.Connections, portList(s.Ports)
				progress.update(s.Connections, st.Shed)
				if s.Connections <= opts.min {
					progress.finish()
					how := ""
					if unshed {
						how = " (nothing closed them: their clients left; see the warning above to have them closed)"
					}
					fmt.Fprintf(c.OutOrStdout(), "drained: %d connections left after %s%s\n", s.Connections, time.Since(started).Round(time.Second), how)
					return nil
				}
			}
		}
		if !time.Now().Before(deadline) {
			progress.finish()
			endShed(ctx, socket, job)
			var why string
			switch {
			case pollErr != nil:
				why = fmt.Sprintf("the agent did not answer how many connections are left: %s", pollErr)
			case left < 0:
				why = "no connection count since the drain began (see `hafeed status`: with very many connections a count takes long, sources.count_budget)"
			default:
				why = fmt.Sprintf("%d connections remain on ports %s", left, ports)
			}
			if unshed {
				why += ", and nothing closed them (see the warning above)"
			}
			return fmt.Errorf("timed out after %s: %s; %s", opts.timeout, why, staysDrained)
		}
		select {
		case <-ctx.Done():
			progress.finish()
			return interrupted(socket, job)
		case <-time.After(min(250*time.Millisecond, time.Until(deadline))):
		}
	}
}

// freshCount says whether the count stamped at came after the drain,
// whose reply showed the count stamped drainCount. The agent counts one
// count after another, so any other stamp is a later count; the stamps are
// not compared with the time here, since after a backward step of the
// clock every later count would be stamped before the drain.
func freshCount(at, drainCount time.Time) bool {
	return !at.IsZero() && !at.Equal(drainCount)
}

// staysDrained ends the message of a wait that gave up: the drain itself
// was applied and outlives the command.
const staysDrained = "the host stays drained (no new connections); `hafeed ready` takes it back into rotation"

// interrupted stops the drain's shedding job, if it started one, and says
// what became of the host.
func interrupted(socket string, job uint64) error {
	if job == 0 {
		return errors.New("interrupted: the host stays drained; its connections were not all gone")
	}
	st, err := stopShed(socket, job)
	if err != nil {
		return fmt.Errorf("interrupted: the host stays drained, but stopping its shedding failed: %w (it ends by itself at --timeout; see `hafeed status`)", err)
	}
	closed := 0
	if st.Shed != nil {
		closed = st.Shed.Closed
	}
	return fmt.Errorf("interrupted: the host stays drained; shedding stopped after closing %d connections", closed)
}

// endShed ends the shedding job numbered job, if any, when the wait
// times out: the job was given the same --timeout, counted from when the
// agent started it a moment later, so it is given a moment to end by
// itself and say it timed out; only then is it stopped.
func endShed(ctx context.Context, socket string, job uint64) {
	if job == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		resp, err := control.Call(ctx, socket, control.Request{Command: control.CommandStatus})
		if err == nil && (resp.Status.Shed == nil || resp.Status.Shed.Job != job || !resp.Status.Shed.Active) {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	stopShed(socket, job)
}

// stopShed stops the shedding job numbered job, if any.
func stopShed(socket string, job uint64) (*control.Status, error) {
	if job == 0 {
		return nil, nil
	}
	// The agent waits for a close in flight (at most 5 s, the job's close
	// timeout) so that the count it answers includes it.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	resp, err := control.Call(ctx, socket, control.Request{Command: control.CommandStopShed, Job: job})
	if err != nil {
		return nil, err
	}
	return resp.Status, nil
}

func portList(ports []uint16) string {
	var b strings.Builder
	for i, p := range ports {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprint(&b, p)
	}
	return b.String()
}

// progress shows how a drain goes: a live bar on a terminal, a line every
// few seconds otherwise (logs, systemd).
type progress struct {
	w       io.Writer
	tty     bool
	first   int
	start   time.Time
	lastLog time.Time
	shown   bool
	samples []rateSample
}

type rateSample struct {
	at    time.Time
	conns int
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, tty: isTerminal(w), first: -1, start: time.Now()}
}

func (p *progress) update(conns int, shed *control.ShedStatus) {
	now := time.Now()
	if p.first < 0 {
		p.first = conns
	}
	p.samples = append(p.samples, rateSample{now, conns})
	for len(p.samples) > 2 && now.Sub(p.samples[0].at) > 5*time.Second {
		p.samples = p.samples[1:]
	}
	rate := 0.0
	if oldest := p.samples[0]; now.Sub(oldest.at) > 0 {
		rate = float64(oldest.conns-conns) / now.Sub(oldest.at).Seconds()
	}
	shedText := ""
	if shed != nil {
		shedText = fmt.Sprintf(", shed %d", shed.Closed)
	}
	if p.tty {
		const width = 30
		done := 0
		if p.first > 0 {
			done = width * (p.first - conns) / p.first
		}
		done = min(max(done, 0), width)
		fmt.Fprintf(p.w, "%s[%s%s] %d left, %.1f/s%s, %s", trusted(p.w, "\r\033[K"), strings.Repeat("#", done), strings.Repeat(".", width-done), conns, rate, shedText, time.Since(p.start).Round(time.Second))
		p.shown = true
		return
	}
	if now.Sub(p.lastLog) >= 5*time.Second {
		fmt.Fprintf(p.w, "draining: %d connections left, %.1f/s%s, %s elapsed\n", conns, rate, shedText, time.Since(p.start).Round(time.Second))
		p.lastLog = now
	}
}

func (p *progress) finish() {
	if p.tty && p.shown {
		fmt.Fprintln(p.w)
		p.shown = false
	}
}
