package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/hafeed/hafeed/internal/farm"
)

// report is everything a benchmark run produced, as -json prints it.
type report struct {
	Machine   machine     `json:"machine"`
	Load      loadReport  `json:"load"`
	Scenarios []scenario  `json:"scenarios"`
	Results   []runResult `json:"results"`
	WallS     float64     `json:"wall_s"`
	Plots     []string    `json:"plots,omitempty"`
}

// machine describes where the benchmark ran.
type machine struct {
	CPUs    int    `json:"cpus"`
	Go      string `json:"go"`
	HAProxy string `json:"haproxy"`
	Load1   string `json:"loadavg_at_start"`
}

// loadReport is the load and the agents' settings, as run.
type loadReport struct {
	HotClients        int     `json:"hot_clients"`
	HotIntervalMS     int64   `json:"hot_interval_ms"`
	LazyClients       int     `json:"lazy_clients"`
	LazyIntervalMS    int64   `json:"lazy_interval_ms"`
	Churn             float64 `json:"churn_per_s"`
	MessagesPerSecond float64 `json:"messages_per_s"`
	WorkMicros        float64 `json:"work_us_per_message"`
	HashNanos         float64 `json:"ns_per_hash"`
	DemandCores       float64 `json:"demand_cores_at_speed_1"`
	BudgetCores       float64 `json:"budget_cores_per_backend"`
	CPUTarget         float64 `json:"targets_cpu"`
	ReferenceCapacity int     `json:"reference_capacity"`
	Smoothing         string  `json:"smoothing"`
	ShedRate          float64 `json:"shed_rate"`
	HardStopAfter     string  `json:"hard_stop_after"`
	Rebalance         string  `json:"rebalance"`
}

func describeLoad(l farm.Load, scale float64) loadReport {
	return loadReport{
		HotClients: int(float64(l.HotClients) * scale), HotIntervalMS: l.HotInterval.Milliseconds(),
		LazyClients: int(float64(l.LazyClients) * scale), LazyIntervalMS: l.LazyInterval.Milliseconds(),
		Churn: l.Churn, MessagesPerSecond: l.MessagesPerSecond() * scale, WorkMicros: l.WorkMicros,
		HashNanos: round3(l.HashNanos), DemandCores: round3(l.DemandCores() * scale), BudgetCores: l.BudgetCores,
		CPUTarget: l.CPUTarget(), ReferenceCapacity: l.ReferenceCapacity(), Smoothing: l.Smoothing.String(),
		ShedRate: l.ShedRate, HardStopAfter: l.HardStop.String(),
		Rebalance: fmt.Sprintf("margin %g, sustain %v, max_rate %g/s, cooldown %v", l.Rebalancing.Margin,
			l.Rebalancing.Sustain, l.Rebalancing.MaxRate, l.Rebalancing.Cooldown),
	}
}

// writeJSON prints the report for machines.
func writeJSON(w io.Writer, r report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// writeTable prints the results as a markdown table.
func writeTable(w io.Writer, r report) {
	fmt.Fprintln(w, "| scenario | policy | max/mean CPU | CPU per backend (cores) | conns per backend | added 90% | drain | moved | shed | failures >5s | left | lost | messages |")
	fmt.Fprintln(w, "|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, res := range r.Results {
		var cpu, conns []string
		for i, name := range res.Backends {
			if i >= len(res.WindowCPU) {
				break
			}
			cpu = append(cpu, fmt.Sprintf("%s %.2f", name, res.WindowCPU[i]))
			conns = append(conns, fmt.Sprintf("%.0f", res.WindowConns[i]))
		}
		added, drain := "", ""
		switch {
		case res.Scenario == "scale-up" && res.FairShareSeconds < 0:
			added = "not reached"
		case res.Scenario == "scale-up":
			added = fmt.Sprintf("%.0f s", res.FairShareSeconds)
		}
		if res.DrainSeconds > 0 {
			drain = fmt.Sprintf("%.1f s", res.DrainSeconds)
		}
		lost := fmt.Sprint(res.Lost)
		if res.Mismatched > 0 {
			lost += fmt.Sprintf(" (+%d mismatched)", res.Mismatched)
		}
		fmt.Fprintf(w, "| %s | %s | %.2f | %s | %s | %s | %s | %d | %d | %d | %d | %s | %d |\n",
			res.Scenario, res.Policy, res.MaxMeanCPU, strings.Join(cpu, ", "), strings.Join(conns, " / "),
			added, drain, res.Moved, res.Shed, res.Failures, res.Left, lost, res.Messages)
	}
}
