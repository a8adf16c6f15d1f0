package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	hpolicy "github.com/hafeed/hafeed/agent/policy"
)

// policyParams are the policy settings a run used, for the record.
type policyParams struct {
	DeadBand  float64 `json:"dead_band"`
	MaxStep   float64 `json:"max_step"`
	Smoothing string  `json:"smoothing"`
	Blackout  string  `json:"blackout"`
	HighWater float64 `json:"high_water"`
	CPUTarget float64 `json:"cpu_target"`
}

func paramsOf(p hpolicy.PolicyConfig) policyParams {
	return policyParams{
		DeadBand:  p.DeadBand,
		MaxStep:   p.MaxStep,
		Smoothing: p.Smoothing.String(),
		Blackout:  p.Blackout.String(),
		HighWater: p.HighWater,
		CPUTarget: p.Targets.CPU,
	}
}

// writeTable prints one row per scenario and policy.
func writeTable(w io.Writer, seed uint64, p hpolicy.PolicyConfig, all []ScenarioResult) error {
	pp := paramsOf(p)
	fmt.Fprintf(w, "seed %d; policy dead_band %.3g, max_step %.3g, smoothing %s, blackout %s\n\n",
		seed, pp.DeadBand, pp.MaxStep, pp.Smoothing, pp.Blackout)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tpolicy\tmean CPU\timbalance\tconn imb.\tnew host 90%\tshare 90%\tdrain imb.\tnoisy peak\tnoisy <1.1\tend imb.\tw changes/min\treversals\tw step\tmoved\tsteady moved\t")
	for _, sr := range all {
		for _, r := range sr.Results {
			window := sr.Drain - sr.ScaleUp
			fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.3f\t%.3f\t%s\t%s\t%.3f\t%.2f\t%s\t%.3f\t%.2f\t%.0f%%\t%.1f\t%d\t%d\t\n",
				sr.Name, r.Policy, r.MeanUtilisation, r.Imbalance, r.ConnImbalance, secondsText(r.NewHostSeconds, window), secondsText(r.NewHostShareSeconds, window),
				r.DrainImbalance, r.NoisyPeak, secondsText(r.NoisyRecoverSeconds, sr.End-sr.Noisy),
				r.EndImbalance, r.WeightChangesPerMinute, 100*r.WeightReversalShare, r.MeanWeightStep, r.ConnectionsMoved, r.SteadyMoved)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, sr := range all {
		fmt.Fprintf(w, "%s: %.2f s wall, reference capacity %d connections\n",
			sr.Scenario, sr.WallSeconds, sr.ReferenceCapacity)
	}
	_, err := fmt.Fprint(w, `
mean CPU: mean over the hosts of their CPU demand in the steady state
imbalance: max/mean utilisation over the hosts in rotation, averaged over the steady state
conn imb.: the same for connections; on an idle-socket farm, what counts
new host 90%: seconds until the added host reaches 90% of the others' mean utilisation
share 90%: seconds until it holds 90% of the connections it settles at (its fair share)
drain imb.: max/mean between the drain and the noisy neighbour; end imb.: over the last 2 minutes
noisy peak: the slowed host's utilisation over the others' mean at worst; noisy <1.1: seconds until back under 1.1
w changes/min: reported weight changes per host per minute in the steady state; reversals: share of
  them that reverse the previous change; w step: their mean size in weight points
moved: connections the agents closed to move them (only hafeed+rebalance sheds); steady moved:
  those closed in the steady state, before any event (5 minutes; 10 for the baseline and idle farms)
`)
	return err
}

func secondsText(v *float64, window int) string {
	if v == nil {
		return fmt.Sprintf(">%d s", window)
	}
	return fmt.Sprintf("%.0f s", *v)
}
