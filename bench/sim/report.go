package main

import (
	"fmt"
	"io"
	"math"
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

// writeDaily prints the daily farm's figures, one row per autoscaler.
func writeDaily(w io.Writer, r DailyResult) error {
	name, hosts := "daily farm", "the speed mix with 0-25% baselines"
	if r.EqualHosts {
		name, hosts = "daily farm (equal hosts)", "equal hosts (speed 1, baseline 12.5%)"
	}
	cpu := hpolicy.DefaultConfig().Targets.CPU
	fmt.Fprintf(w, "%s, seed %d: %d days of %g h (the last measured), %d to %d connections on the curve, %s, reference capacity %d;\n"+
		"target band: utilisation %.3g-%.3g (CPU %.0f-%.0f%%), boot %d s, drains shed %d/s, HPA sync %d s, scale-down window %d s, cooldown %d s\n\n",
		name, r.Seed, r.Days, r.Day.Hours(), r.Trough, r.Peak, hosts, r.Reference,
		r.Band[0], r.Band[1], 100*cpu*r.Band[0], 100*cpu*r.Band[1],
		r.Scalers.BootSeconds, r.Scalers.ShedRate, r.Scalers.SyncSeconds, r.Scalers.DownWindowSeconds, r.Scalers.CooldownSeconds)
	if len(r.Results) > 0 {
		x := r.Results[0]
		fmt.Fprintf(w, "connections over the measured day: %d to %d, taken each minute (the same arrivals in every run)\n\n", x.FewestConnections, x.MostConnections)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "autoscaler\tmean outside\t(below)\tbusiest above\tover target\thost-hours\thosts\tmoved\tper host-hour\tper drain\timbalance\tscale-outs\tscale-ins\tmean speed\t")
	for _, x := range r.Results {
		perDrain := math.NaN()
		if x.Drained > 0 {
			perDrain = float64(x.DrainMoved) / float64(x.Drained)
		}
		fmt.Fprintf(tw, "%s\t%.1f%%\t%.1f%%\t%.1f%%\t%.1f%%\t%.0f\t%d-%d\t%d\t%.1f\t%.0f\t%.3f\t%d\t%d\t%.2f\t\n",
			x.Autoscaler, 100*x.MeanOutside, 100*x.MeanBelow, 100*x.MaxAbove, 100*x.OverTarget, x.HostHours, x.MinHosts, x.MaxHosts,
			x.Moved, x.MovedPerHostHour, perDrain, x.Imbalance, x.ScaleOuts, x.ScaleIns, x.MeanSpeed)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, `
mean outside: share of the measured day's seconds at which the mean utilisation (CPU / CPU target) of the
  hosts in rotation was outside the band; (below): the part of it below; busiest above: share at which the
  busiest host was above the band; over target: above 1.0, its CPU target
host-hours: every host from its launch to its removal, booting and draining included; hosts: fewest-most
moved: connections closed to move them, by the drains' shedding and the agents' rebalancers; per host-hour;
  per drain: the drains' shedding over the hosts drained
imbalance: max/mean utilisation of the hosts in rotation, averaged over the steady seconds (%d s or more after
  the last launch, join, drain or removal)
scale-outs, scale-ins: actions; mean speed: the hosts' mean speed over the day
%.1f s wall
`, steadyAfter, r.WallSeconds)
	return err
}
