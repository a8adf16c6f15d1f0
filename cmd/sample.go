package cmd

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hafeed/hafeed/agent/config"
	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/agent/policy"
	"github.com/hafeed/hafeed/agent/sampler"
	"github.com/hafeed/hafeed/haproxy"
)

// cpuWindow is how long `hafeed sample` watches the CPU: a busy fraction
// needs two readings.
const cpuWindow = 500 * time.Millisecond

// takeSample takes one sample with cfg's sources, as the agent would.
func takeSample(c *cobra.Command, cfg config.Config) (sampler.Sample, error) {
	ctx, cancel := commandContext(c)
	defer cancel()
	src := cfg.Sources
	src.CountBudget = 0 // one sample: count every time
	smp := sampler.New(src, config.PortOf(cfg.AgentCheck.Listen))
	// One sample has no history: report the estimate at once.
	pc := cfg.Policy
	pc.Blackout = 0
	smp.Sample(ctx, pc, 1, 0)
	select {
	case <-time.After(cpuWindow):
	case <-ctx.Done():
		return sampler.Sample{}, ctx.Err()
	}
	return smp.Sample(ctx, pc, 1, 0), nil
}

func newSampleCmd() *cobra.Command {
	var flags configFlags
	var asJSON bool
	c := &cobra.Command{
		Use:   "sample",
		Short: "Take one load sample with the configured sources, no daemon needed",
		Long: `Take one sample with the sources the configuration names, exactly as the agent
would, and print the inputs, the score, the reply a ready host would send, and
how long the sample took. CPU is measured over ` + cpuWindow.String() + `.`,
		Example: `  hafeed sample --ports 8080
  hafeed sample --config /etc/hafeed/hafeed.yaml --json`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, _, err := flags.load(c)
			if err != nil {
				return err
			}
			s, err := takeSample(c, cfg)
			if err != nil {
				return err
			}
			reply := strings.TrimSuffix(haproxy.Reply{Admin: haproxy.AdminReady, WeightPercent: s.WeightPercent, Maxconn: s.Maxconn, SendMaxconn: s.SendMaxconn}.Line(), "\n")
			if asJSON {
				return writeJSON(c, struct {
					control.Sample
					Reply string `json:"reply"`
				}{control.SampleOf(s), reply})
			}
			tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 0, 2, ' ', 0)
			wire := control.SampleOf(s)
			printSample(tw, &wire, styleFor(c.OutOrStdout()))
			fmt.Fprintf(tw, "reply\t%s (when ready)\n", reply)
			if s.Capacity > 0 {
				fmt.Fprintf(tw, "reference\tpolicy.reference_capacity is %d; a host like this one would suggest about %d (weight 100%%)\n",
					cfg.Policy.ReferenceCapacity, policy.SuggestReference(s.Capacity))
			}
			return tw.Flush()
		},
	}
	flags.register(c, sampleFlags)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return c
}
