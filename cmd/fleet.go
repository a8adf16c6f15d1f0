package cmd

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/internal/termsafe"
)

func newFleetCmd() *cobra.Command {
	var flags configFlags
	var asJSON bool
	c := &cobra.Command{
		Use:   "fleet",
		Short: "Show the backend through HAProxy: capacity, utilisation, desired servers, which to remove",
		Long: `Ask the running agent for its backend as HAProxy shows it, through the agent's
runtime endpoints (haproxy[].runtime): every server's state, weight,
connections and capacity (weight x reference_capacity / 100); the totals of
the servers in rotation and their utilisation (connections / capacity, 1.0 =
every host at its targets); desired_servers, as Kubernetes' HPA computes it
against fleet.target_utilisation within fleet.tolerance; and
scale_in_candidate, the ready server whose drain moves the fewest
connections, leaving out servers that changed state within fleet.settle.
Every agent of a backend computes the same figures. The same JSON is served
at GET /fleet on the metrics listener (metrics.listen). Without a runtime
endpoint it says what to configure and exits 2.`,
		Example: `  hafeed fleet
  hafeed fleet --json | jq .desired_servers
  hafeed fleet --json | jq -r .scale_in_candidate   # the host to remove`,
		Args:        noArgs,
		Annotations: clientNote(),
		RunE: func(c *cobra.Command, _ []string) error {
			resp, err := callAgent(c, flags.socket(c), control.Request{Command: control.CommandFleet})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c, resp.Fleet)
			}
			printFleet(c.OutOrStdout(), resp.Fleet)
			return nil
		},
	}
	flags.register(c, clientFlags)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON (stable field names) instead of a table")
	return c
}

func printFleet(w io.Writer, f *control.Fleet) {
	line := func(format string, args ...any) { fmt.Fprintln(w, termsafe.Line(fmt.Sprintf(format, args...))) }
	line("backend %s: %d of %d servers in rotation; %d connections of a capacity of %d: utilisation %.2f (target %.2f, tolerance %.0f%%)",
		f.Backend, f.InRotation, len(f.Servers), f.Connections, f.CapacityConnections, f.Utilisation, f.TargetUtilisation, 100*f.Tolerance)
	line("desired servers: %d (%s)", f.DesiredServers, change(f.DesiredServers-f.InRotation))
	if f.ScaleInCandidate != "" {
		for _, s := range f.Servers {
			if s.Name == f.ScaleInCandidate {
				line("scale-in candidate: %s (its drain moves %d connections)", s.Name, s.Connections)
			}
		}
	} else {
		line("scale-in candidate: none")
	}
	for _, s := range f.Skipped {
		line("  not %s: %s", s.Name, s.Why)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVER\tSTATE\tWEIGHT\tCONNECTIONS\tCAPACITY\tCHANGED")
	for _, s := range f.Servers {
		self := ""
		if s.Name == f.Self {
			self = " (this host)"
		}
		fmt.Fprintln(tw, termsafe.Line(fmt.Sprintf("%s%s\t%s\t%d%%\t%d\t%d\t%ds ago", s.Name, self, s.State, s.WeightPercent, s.Connections, s.CapacityConnections, s.SinceChangeSeconds)))
	}
	tw.Flush()
}

func change(n int) string {
	switch {
	case n > 0:
		return fmt.Sprintf("add %d", n)
	case n < 0:
		return fmt.Sprintf("remove %d", -n)
	}
	return "as many as now"
}
