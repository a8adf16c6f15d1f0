package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	hpolicy "github.com/hafeed/hafeed/agent/policy"
)

// TestSmallScenario runs the 10-host scenario: the same seed gives the
// same results, and hafeed's weights beat plain leastconn.
func TestSmallScenario(t *testing.T) {
	t.Parallel()
	sc := scenarios[0]
	run := func() ScenarioResult {
		sr, err := runScenario(sc, 1, hpolicy.DefaultConfig(), 1, false, 2)
		if err != nil {
			t.Fatal(err)
		}
		sr.WallSeconds = 0
		return sr
	}
	first, second := run(), run()
	if diff := cmp.Diff(first, second, cmpopts.IgnoreUnexported(Result{})); diff != "" {
		t.Fatalf("two runs with the same seed differ (-first +second):\n%s", diff)
	}
	byPolicy := map[string]Result{}
	for _, r := range first.Results {
		byPolicy[r.Policy] = r
		if r.Refused != 0 || (r.Policy != "hafeed+rebalance" && r.ConnectionsMoved != 0) || r.SteadyMoved != 0 {
			t.Errorf("%s: %d refused, %d moved (%d in the steady state); want none refused, none moved but by the rebalancer, and none by it in the steady state", r.Policy, r.Refused, r.ConnectionsMoved, r.SteadyMoved)
		}
	}
	lc, hf := byPolicy["leastconn"], byPolicy["leastconn+hafeed"]
	if lc.Imbalance < 1.3 {
		t.Errorf("leastconn imbalance %.3f: the scenario should be heterogeneous enough for at least 1.3", lc.Imbalance)
	}
	if hf.Imbalance >= lc.Imbalance || hf.Imbalance > 1.1 {
		t.Errorf("leastconn+hafeed imbalance %.3f, leastconn %.3f: want hafeed lower and at most 1.1", hf.Imbalance, lc.Imbalance)
	}
	if hf.NewHostSeconds == nil || hf.NoisyRecoverSeconds == nil {
		t.Errorf("leastconn+hafeed: the added host or the noisy neighbour never settled: %+v", hf)
	}
	if lc.WeightChangesPerMinute != 0 {
		t.Errorf("leastconn changed weights %.2f times a minute; it has no agent", lc.WeightChangesPerMinute)
	}
}

// scenarioByName runs one scenario at seed 1 and returns its results by
// policy.
func scenarioByName(t *testing.T, name string) map[string]Result {
	t.Helper()
	sc, err := selectScenarios(name)
	if err != nil {
		t.Fatal(err)
	}
	sr, err := runScenario(sc[0], 1, hpolicy.DefaultConfig(), 1, false, 2)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Result{}
	for _, r := range sr.Results {
		out[r.Policy] = r
	}
	return out
}

// result is the named policy's (or autoscaler's) result, failing the test
// when the scenario has none: a missing one would read as zeros and pass
// every bound.
func result[R any](t *testing.T, byPolicy map[string]R, name string) R {
	t.Helper()
	r, ok := byPolicy[name]
	if !ok {
		t.Fatalf("no result for policy %q", name)
	}
	return r
}

// TestRealisticLoadShapes holds hafeed to the targets on the farms real
// WebSocket hosts make: per-host CPU baselines of 0-25% that connections
// do not cause, and sockets that cost next to nothing beside a baseline.
func TestRealisticLoadShapes(t *testing.T) {
	t.Parallel()
	plain, base, idle := scenarioByName(t, "small"), scenarioByName(t, "small-baseline"), scenarioByName(t, "small-idle")
	hf := result(t, base, "leastconn+hafeed")
	if hf.Imbalance > 1.03 {
		t.Errorf("baseline farm: hafeed's steady max/mean utilisation %.3f, want at most 1.03", hf.Imbalance)
	}
	plainHF := result(t, plain, "leastconn+hafeed")
	if hf.NewHostSeconds == nil || plainHF.NewHostSeconds == nil || *hf.NewHostSeconds > 1.2**plainHF.NewHostSeconds {
		t.Errorf("baseline farm: the added host took %v s to reach 90%%, without baselines %v s: want at most 20%% more", hf.NewHostSeconds, plainHF.NewHostSeconds)
	}
	if r := result(t, idle, "leastconn+hafeed"); r.ConnImbalance > 1.05 {
		t.Errorf("idle-socket farm: hafeed's connection max/mean %.3f, want at most 1.05 (leastconn: %.3f)", r.ConnImbalance, result(t, idle, "leastconn").ConnImbalance)
	}
	for name, res := range map[string]map[string]Result{"baseline": base, "idle": idle} {
		if r := result(t, res, "hafeed+rebalance"); r.SteadyMoved != 0 {
			t.Errorf("%s farm: the rebalancer moved %d connections in ten steady minutes, want none", name, r.SteadyMoved)
		}
	}
}

// TestAutoscaledFarm holds the rebalancer to issue 16's targets on the farm
// an autoscaler keeps changing, over several seeds: every host entering
// service holds 90% of its fair share within 30 s of its ready, the moves
// are at most 1.3x the least that had to move, and after the last event ten
// steady minutes move nothing.
func TestAutoscaledFarm(t *testing.T) {
	t.Parallel()
	for seed := uint64(1); seed <= 5; seed++ {
		r, err := runAutoscaled(seed)
		if err != nil {
			t.Fatal(err)
		}
		joins := 0
		for _, st := range r.Steps {
			if st.Kind == "drain" {
				continue
			}
			joins++
			if st.Reach90 == nil || *st.Reach90 > 30 {
				t.Errorf("seed %d: %s of %s at %d s: 90%% of its fair share after %v s, want within 30 s", seed, st.Kind, st.Host, st.At, st.Reach90)
			}
		}
		if joins < autoscaledMax-autoscaledMin {
			t.Fatalf("seed %d: %d hosts entered service, want at least %d: the timeline is not the farm the test is about", seed, joins, autoscaledMax-autoscaledMin)
		}
		if r.Minimum == 0 || float64(r.Moved) > 1.3*float64(r.Minimum) {
			t.Errorf("seed %d: moved %d connections, the least that had to move %d: want at most 1.3x", seed, r.Moved, r.Minimum)
		}
		if r.SteadyMoved != 0 || r.Refused != 0 {
			t.Errorf("seed %d: %d moved in the steady minutes after the last event and %d refused, want none", seed, r.SteadyMoved, r.Refused)
		}
	}
}

func TestSeedChangesResults(t *testing.T) {
	t.Parallel()
	sc := scenarios[0].quick()
	a, err := runScenario(sc, 1, hpolicy.DefaultConfig(), 1, false, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := runScenario(sc, 2, hpolicy.DefaultConfig(), 1, false, 1)
	if err != nil {
		t.Fatal(err)
	}
	if a.Results[0].Imbalance == b.Results[0].Imbalance {
		t.Errorf("seeds 1 and 2 gave the same roundrobin imbalance %v", a.Results[0].Imbalance)
	}
}

// TestPareto checks both inverses against the closed forms of the
// distribution functions.
func TestPareto(t *testing.T) {
	t.Parallel()
	p := newPareto(300, 1.5)
	if p.scale != 100 {
		t.Fatalf("scale %v, want 100", p.scale)
	}
	survival := func(x float64) float64 { return math.Pow(p.scale/x, p.alpha) }
	equilibrium := func(x float64) float64 {
		if x <= p.scale {
			return x / p.mean
		}
		return (p.scale + p.scale/(p.alpha-1)*(1-math.Pow(p.scale/x, p.alpha-1))) / p.mean
	}
	for _, u := range []float64{0, 0.1, 1.0 / 3, 0.5, 0.9, 0.999} {
		if got := 1 - survival(p.lifetime(u)); math.Abs(got-u) > 1e-9 {
			t.Errorf("lifetime(%v): its CDF is %v", u, got)
		}
		if got := equilibrium(p.residual(u)); math.Abs(got-u) > 1e-9 {
			t.Errorf("residual(%v): its CDF is %v", u, got)
		}
	}
	alt := newPareto(300, 2.5)
	if got := 1 - math.Pow(alt.scale/alt.lifetime(0.5), 2.5); math.Abs(got-0.5) > 1e-9 {
		t.Errorf("alpha 2.5: lifetime(0.5) has CDF %v", got)
	}
}

func TestLeastConn(t *testing.T) {
	t.Parallel()
	b := newBalancer(leastConn, 4)
	for h := range 3 {
		b.set(h, 100, 0, true)
	}
	// Ties take turns.
	var got []int
	for range 6 {
		got = append(got, b.pick())
	}
	if diff := cmp.Diff([]int{0, 1, 2, 0, 1, 2}, got); diff != "" {
		t.Errorf("equal weights (-want +got):\n%s", diff)
	}
	// Weight 200 takes twice the connections: (conns+1)/weight.
	b.set(2, 200, 0, true)
	for range 300 {
		b.pick()
	}
	total := func(h int) int { return int(b.conns[h]) }
	if total(2) < 2*total(0)-2 || total(2) > 2*total(0)+2 || abs(total(0)-total(1)) > 1 {
		t.Errorf("weights 100/100/200 gave %d/%d/%d connections", total(0), total(1), total(2))
	}
	// Out of rotation, weight 0 and a full maxconn take nothing.
	b.set(0, 100, 0, false)
	b.set(1, 0, 0, true)
	b.set(2, 200, b.conns[2], true)
	if h := b.pick(); h != -1 {
		t.Errorf("every server excluded, picked %d", h)
	}
	b.release(2)
	if h := b.pick(); h != 2 {
		t.Errorf("below maxconn again: picked %d, want 2", h)
	}
	// A server joining empty takes the next connections.
	b.set(0, 100, 0, true)
	b.set(1, 100, 0, true)
	b.set(2, 100, 0, true)
	b.set(3, 100, 0, true)
	if h := b.pick(); h != 3 {
		t.Errorf("the empty server should be picked, got %d", h)
	}
}

func TestRoundRobin(t *testing.T) {
	t.Parallel()
	b := newBalancer(roundRobin, 4)
	for h := range 4 {
		b.set(h, 100, 0, true)
	}
	b.set(2, 100, 0, false)
	var got []int
	for range 6 {
		got = append(got, b.pick())
	}
	if diff := cmp.Diff([]int{0, 1, 3, 0, 1, 3}, got); diff != "" {
		t.Errorf("rotation without server 2 (-want +got):\n%s", diff)
	}
}

func TestTableAndPlot(t *testing.T) {
	t.Parallel()
	sr, err := runScenario(scenarios[0].quick(), 1, hpolicy.DefaultConfig(), 1, true, 2)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := writeTable(&out, 1, hpolicy.DefaultConfig(), []ScenarioResult{sr}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"roundrobin", "leastconn+hafeed", "small (10 hosts, 1000 connections"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	// A minute of each series is enough to exercise the plot, and quicker
	// to draw under the race detector.
	for i := range sr.Results {
		for h, series := range sr.Results[i].series {
			sr.Results[i].series[h] = series[:60]
		}
	}
	path := filepath.Join(t.TempDir(), "sim.png")
	if err := plotUtilisation(sr, path); err != nil {
		t.Fatal(err)
	}
	png, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("%s is not a PNG", path)
	}
}

func TestFlags(t *testing.T) {
	t.Parallel()
	opts, err := parseFlags([]string{"-scenario", "small", "-dead-band", "0.02", "-seed", "7"})
	if err != nil {
		t.Fatal(err)
	}
	if opts.policy.DeadBand != 0.02 || opts.seed != 7 || opts.policy.Smoothing != hpolicy.DefaultConfig().Smoothing {
		t.Errorf("parsed %+v", opts)
	}
	if _, err := selectScenarios("huge"); err == nil {
		t.Error("an unknown scenario was accepted")
	}
}

func abs(x int) int { return max(x, -x) }

// TestDailyFarm runs the daily farm of make sim QUICK=1 (issue 18): a day
// compressed to 4 hours, as many hosts with a quarter of the connections.
// desired_servers keeps the farm in the band about as long as the mean
// CPU, with fewer host-hours and cheaper drains, because its scale-in
// candidate is the host whose drain moves the fewest connections, which
// under hafeed's weights is the smallest; and a mean CPU autoscaler
// without hafeed's balancing leaves its busiest host above the band most
// of the day. Seeds 1-6 of this farm: desired_servers outside the band
// 0.4-4.9 points more than the mean CPU, in 77-90 % of its host-hours.
func TestDailyFarm(t *testing.T) {
	t.Parallel()
	c := dailyConfig.quick()
	r, err := runDaily(c, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	sc := defaultScaler()
	by := map[string]DailyScalerResult{}
	for _, x := range r.Results {
		by[x.Autoscaler] = x
		for name, v := range map[string]float64{"mean outside": x.MeanOutside, "busiest above": x.MaxAbove, "host-hours": x.HostHours,
			"moved per host-hour": x.MovedPerHostHour, "imbalance": x.Imbalance, "mean utilisation": x.MeanUtilisation, "mean speed": x.MeanSpeed} {
			if math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
				t.Errorf("%s: %s is %v, want a positive figure", x.Autoscaler, name, v)
			}
		}
		if x.MinHosts < sc.MinHosts || x.MaxHosts > sc.MaxHosts || x.ScaleOuts == 0 || x.ScaleIns == 0 {
			t.Errorf("%s: %d to %d hosts, %d scale-outs, %d scale-ins: want within %d-%d, and both actions over the day", x.Autoscaler, x.MinHosts, x.MaxHosts, x.ScaleOuts, x.ScaleIns, sc.MinHosts, sc.MaxHosts)
		}
		if x.Refused != 0 || x.Fallbacks != 0 {
			t.Errorf("%s: %d connections refused, %d scale-ins without a candidate, want none", x.Autoscaler, x.Refused, x.Fallbacks)
		}
		if got, want := len(x.series), c.daySeconds()/60; got != want {
			t.Errorf("%s: %d minutes recorded, want %d", x.Autoscaler, got, want)
		}
	}
	ds, cpu, plain := result(t, by, "desired_servers"), result(t, by, "mean CPU"), result(t, by, "mean CPU, leastconn")
	lo, hi := math.Inf(1), 0.0
	for _, m := range cpu.series {
		lo, hi = min(lo, float64(m.connections)), max(hi, float64(m.connections))
	}
	if hi < 2*lo {
		t.Errorf("the connections went from %.0f to %.0f over the day, want at least a 2x swing (the curve's is 3x)", lo, hi)
	}
	for _, x := range []DailyScalerResult{ds, cpu} {
		if x.MeanOutside > 0.35 || x.OverTarget > 0.01 {
			t.Errorf("%s: mean outside the band %.1f%% of the day, a host over its target %.1f%%: want at most 35%% and 1%%", x.Autoscaler, 100*x.MeanOutside, 100*x.OverTarget)
		}
	}
	if ds.MeanOutside > cpu.MeanOutside+0.06 {
		t.Errorf("desired_servers: mean outside the band %.1f%% of the day, mean CPU %.1f%%: want no more than 6 points more", 100*ds.MeanOutside, 100*cpu.MeanOutside)
	}
	if ds.HostHours > 0.9*cpu.HostHours {
		t.Errorf("desired_servers: %.1f host-hours, mean CPU %.1f: want at most 90%%", ds.HostHours, cpu.HostHours)
	}
	perDrain := func(x DailyScalerResult) float64 { return float64(x.DrainMoved) / float64(x.Drained) }
	if perDrain(ds) > perDrain(cpu) {
		t.Errorf("desired_servers: its drains moved %.0f connections each, mean CPU's %.0f: want no more", perDrain(ds), perDrain(cpu))
	}
	if plain.MaxAbove < 0.5 || plain.Imbalance < 1.2 {
		t.Errorf("mean CPU with plain leastconn: busiest host above the band %.1f%% of the day, imbalance %.3f: want at least 50%% and 1.2 on hosts of three speeds", 100*plain.MaxAbove, plain.Imbalance)
	}
}

// TestScaleDownWindow checks the autoscalers' stabilisation, HPA's: a
// scale-out at once, a scale-in only to the highest recommendation of
// the last five minutes, within the host bounds.
func TestScaleDownWindow(t *testing.T) {
	t.Parallel()
	sc := defaultScaler()
	var c controller
	steps := []struct{ sec, raw, current, want int }{
		{0, 10, 10, 10},
		{15, 14, 10, 14},   // out at once
		{30, 12, 14, 14},   // in: 14 was recommended 15 s ago
		{314, 12, 14, 14},  // still in the window
		{330, 11, 14, 12},  // 14 has left it: the highest since is 12
		{345, 1, 12, 12},   // 12 and 11 are in it
		{660, 1, 12, 3},    // only 1 is left: the minimum
		{675, 500, 3, 120}, // the maximum
	}
	for _, s := range steps {
		if got := c.recommend(sc, s.sec, s.raw, s.current); got != s.want {
			t.Errorf("at %d s, %d recommended with %d hosts: %d, want %d", s.sec, s.raw, s.current, got, s.want)
		}
	}
}

// TestDailyCurve checks the load curve: the trough at 04:00, the peak at
// 16:00, the mean between, and the slope its derivative.
func TestDailyCurve(t *testing.T) {
	t.Parallel()
	c := DailyConfig{Day: 24 * time.Hour, Days: 2, Trough: 8000, Peak: 24000, Reference: 1000}
	for _, tc := range []struct{ hour, want float64 }{{4, 8000}, {16, 24000}, {10, 16000}, {22, 16000}, {28, 8000}} {
		sec := tc.hour * 3600
		got, slope := c.load(sec)
		if math.Abs(got-tc.want) > 1e-6 {
			t.Errorf("%g h: %.1f connections, want %.0f", tc.hour, got, tc.want)
		}
		next, _ := c.load(sec + 1)
		if prev, _ := c.load(sec - 1); math.Abs((next-prev)/2-slope) > 1e-3 {
			t.Errorf("%g h: slope %.5f, the curve moves %.5f a second", tc.hour, slope, (next-prev)/2)
		}
	}
	if h := c.hourOfDay(30 * 3600); h != 6 {
		t.Errorf("30 h into the run is %g h of the day, want 6", h)
	}
}
