package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/hafeed/hafeed/bench/internal/procstat"
)

// Targets of issue 19.
const (
	targetAgentCPU   = 1.0  // % of a core
	targetAgentRSS   = 30.0 // MiB
	targetDrainSecs  = 30.0
	targetLostClient = 0
)

type machineInfo struct {
	NumCPU    int    `json:"nproc"`
	Kernel    string `json:"kernel"`
	GoBuild   string `json:"go"`
	HAProxy   string `json:"haproxy"`
	Somaxconn int    `json:"somaxconn"`
}

type optionSet struct {
	ConnectRate int     `json:"connect_rate"`
	Interval    float64 `json:"message_interval_s"`
	Window      float64 `json:"window_s"`
	ShedRate    int     `json:"shed_rate"`
	Quick       bool    `json:"quick"`
}

func optionsOf(o options) optionSet {
	return optionSet{ConnectRate: o.connectRate, Interval: o.interval.Seconds(), Window: o.window.Seconds(), ShedRate: o.shedRate, Quick: o.quick}
}

// probeResult is the most one HAProxy held.
type probeResult struct {
	Maxconn   int    `json:"maxconn"`
	RefusedAt string `json:"refused_maxconn_plus_one"`
	UlimitN   int    `json:"ulimit_n"`
	Maxsock   int    `json:"maxsock"`
	Tried     int    `json:"clients_tried"`
	// Held is the most CurrConns seen.
	Held      int     `json:"held"`
	HeldFDs   int     `json:"held_fds"`
	Connected int     `json:"clients_connected"`
	AppConns  int     `json:"app_conns"`
	Seconds   float64 `json:"seconds"`
}

type connectResult struct {
	Clients      int     `json:"clients"`
	Rate         int     `json:"rate"`
	RampUp       float64 `json:"ramp_up_s"`
	Seconds      float64 `json:"seconds"`
	DialFailures int     `json:"dial_failures"`
}

// agentCost is one agent over the steady window.
type agentCost struct {
	Host        string  `json:"host"`
	Conns       int     `json:"conns"`
	CPUPercent  float64 `json:"cpu_pct_of_core"`
	UserSeconds float64 `json:"user_s"`
	SysSeconds  float64 `json:"sys_s"`
	RSSMiB      float64 `json:"rss_mib"`
	HWMMiB      float64 `json:"hwm_mib"`
	// What its status said after the window.
	Counted   int     `json:"counted"`
	CountMs   float64 `json:"count_ms"`
	CountAge  float64 `json:"count_age_s"`
	Weight    int     `json:"weight_pct"`
	Peers     int     `json:"peers"`
	Endpoints int     `json:"endpoints"`
}

type steadyResult struct {
	From      float64           `json:"from"`
	To        float64           `json:"to"`
	Seconds   float64           `json:"seconds"`
	Agents    []agentCost       `json:"agents"`
	Sockstat  procstat.Sockstat `json:"sockstat"`
	HostBusy  float64           `json:"host_busy_pct"`
	LoadStart procstat.LoadAvg  `json:"load_start"`
	LoadEnd   procstat.LoadAvg  `json:"load_end"`
	// GroupCores is the CPU of each kind of process, in cores.
	GroupCores map[string]float64 `json:"group_cores"`
	// GroupMiB is their VmRSS at the end of the window.
	GroupMiB        map[string]float64 `json:"group_mib"`
	MemAvailableMiB float64            `json:"mem_available_mib"`
	Imbalance       float64            `json:"imbalance"`
	PerHost         []int              `json:"per_host"`
	HAProxySpread   float64            `json:"haproxy_spread"`
	PerHAProxy      []int              `json:"per_haproxy"`
}

func (s *steadyResult) agentsLine() string {
	var parts []string
	for _, a := range s.Agents {
		parts = append(parts, fmt.Sprintf("%s %.2f%% %.1f MiB", a.Host, a.CPUPercent, a.RSSMiB))
	}
	return strings.Join(parts, ", ")
}

type drainResult struct {
	Host     string `json:"host"`
	Held     int    `json:"held"`
	ShedRate int    `json:"shed_rate"`
	Command  string `json:"command"`
	// Seconds is how long hafeed drain --wait took; EmptySeconds when the
	// host's application counted none left.
	Seconds           float64 `json:"seconds"`
	EmptySeconds      float64 `json:"empty_seconds"`
	AllBackSeconds    float64 `json:"all_back_seconds"`
	Shed              int     `json:"shed"`
	Reconnects        int     `json:"reconnects"`
	LongestDisconnect float64 `json:"longest_disconnect_s"`
	Failures          int     `json:"failures"`
	Lost              int     `json:"lost_messages"`
	Connected         int     `json:"connected"`
	Others            []int   `json:"others"`
	Output            string  `json:"output"`
	// Error is why hafeed drain failed, if it did.
	Error string `json:"error,omitempty"`
	// TCP is how the kernel's TCP counters rose meanwhile (the whole
	// machine's, other jobs included).
	TCP map[string]int64 `json:"tcp,omitempty"`
}

type rebalanceResult struct {
	Host  string `json:"host"`
	Hosts int    `json:"hosts"`
	// Seconds until it held 90 % of its fair share; -1 never.
	Seconds           float64          `json:"seconds"`
	Fair              int              `json:"fair"`
	Moved             int              `json:"moved"`
	Shed              int              `json:"shed"`
	LongestDisconnect float64          `json:"longest_disconnect_s"`
	Failures          int              `json:"failures"`
	Lost              int              `json:"lost_messages"`
	Final             []int            `json:"final"`
	FinalImbalance    float64          `json:"final_imbalance"`
	TCP               map[string]int64 `json:"tcp,omitempty"`
}

type event struct {
	At    float64 `json:"t"`
	Label string  `json:"label"`
}

type results struct {
	Machine    machineInfo      `json:"machine"`
	Options    optionSet        `json:"options"`
	Plan       plan             `json:"plan"`
	PortPairs  []portPair       `json:"port_pairs"`
	LoadBefore procstat.LoadAvg `json:"load_before"`
	LoadAfter  procstat.LoadAvg `json:"load_after"`
	Probe      *probeResult     `json:"probe,omitempty"`
	Connect    connectResult    `json:"connect"`
	Steady     *steadyResult    `json:"steady,omitempty"`
	Drain      *drainResult     `json:"drain,omitempty"`
	Rebalance  *rebalanceResult `json:"rebalance,omitempty"`
	End        clientsReport    `json:"end"`
	Events     []event          `json:"events"`
	Samples    []sample         `json:"samples"`
}

// event marks the timeline.
func (r *results) event(rec *recorder, label string) {
	r.Events = append(r.Events, event{At: rec.now(), Label: label})
}

// missed lists the targets the run did not meet.
func (r *results) missed() []string {
	var out []string
	if r.Steady != nil {
		for _, a := range r.Steady.Agents[:r.Plan.Hosts] {
			if a.CPUPercent > targetAgentCPU {
				out = append(out, fmt.Sprintf("%s CPU %.2f%% > %.0f%%", a.Host, a.CPUPercent, targetAgentCPU))
			}
			if a.RSSMiB > targetAgentRSS {
				out = append(out, fmt.Sprintf("%s RSS %.1f MiB > %.0f MiB", a.Host, a.RSSMiB, targetAgentRSS))
			}
		}
	}
	if d := r.Drain; d != nil && d.Error != "" {
		out = append(out, fmt.Sprintf("drain gave up after %.1f s (host empty after %.1f s): %s", d.Seconds, d.EmptySeconds, d.Error))
	} else if d != nil && d.Seconds > targetDrainSecs {
		out = append(out, fmt.Sprintf("drain %.1f s > %.0f s (host empty after %.1f s)", d.Seconds, targetDrainSecs, d.EmptySeconds))
	}
	if lost := r.lostClients(); r.Connect.Clients > 0 && lost > targetLostClient {
		out = append(out, fmt.Sprintf("%d clients lost", lost))
	}
	return out
}

// lostClients counts the clients disconnected for more than failAfter at
// any time, and those not connected at the end.
func (r *results) lostClients() int {
	return r.End.Failures + max(0, r.Plan.Conns-r.End.Connected)
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "**MISSED**"
}

// writeMarkdown prints the results as docs/BENCHMARKS.md shows them.
func (r *results) writeMarkdown(w io.Writer) error {
	var b strings.Builder
	p := r.Plan
	fmt.Fprintf(&b, "Machine: %d CPUs, kernel %s, %s, %s; RLIMIT_NOFILE %d (hard) per process, somaxconn %d, ip_local_port_range %d-%d.\n",
		r.Machine.NumCPU, r.Machine.Kernel, r.Machine.GoBuild, r.Machine.HAProxy, p.NoFile, r.Machine.Somaxconn, p.PortLow, p.PortHigh)
	fmt.Fprintf(&b, "Load average before the run: %s; after: %s.\n\n", r.LoadBefore, r.LoadAfter)
	if pr := r.Probe; pr != nil {
		fmt.Fprintf(&b, "**One HAProxy**: maxconn %d is the most it can be given (2 descriptors a connection + %d = %d of %d; with maxconn %d it refuses to start: `%s`). Alone, with %d clients trying, it held **%d** connections (CurrConns; %d descriptors open, ulimit-n %d) after %.0f s.\n\n",
			pr.Maxconn, p.Reserved, pr.Maxsock, p.NoFile, pr.Maxconn+1, pr.RefusedAt, pr.Tried, pr.Held, pr.HeldFDs, pr.UlimitN, pr.Seconds)
	}
	fmt.Fprintf(&b, "**The farm**: %d clients through %d HAProxy processes sharing %s (SO_REUSEPORT), each with maxconn %d and its own source address toward the hosts; %d hosts with %d application processes each on one SO_REUSEPORT port, and a hafeed each; a %dth host joins at the end. %d client processes, one source address each.\n\n",
		p.Conns, p.HAProxies, frontendIP, p.MaxPerHAProxy, p.Hosts, p.AppProcs, p.Hosts+1, p.ClientProcs)
	b.WriteString("| source → destination, at its busiest | connections | of the port range |\n|---|---:|---:|\n")
	for _, pp := range r.PortPairs {
		fmt.Fprintf(&b, "| %s | %d | %.0f %% of %d |\n", pp.What, pp.Peak, pp.Share()*100, pp.Range)
	}
	b.WriteString("\n| measure | result | target |\n|---|---|---|\n")
	c := r.Connect
	if c.Clients > 0 {
		fmt.Fprintf(&b, "| time to connect %d clients (ramp-up %.0f s at %d/s) | %.1f s, %d dial failures | |\n", c.Clients, c.RampUp, c.Rate, c.Seconds, c.DialFailures)
	}
	if s := r.Steady; s != nil {
		for _, a := range s.Agents {
			target := fmt.Sprintf("≤ %.0f %%, ≤ %.0f MiB", targetAgentCPU, targetAgentRSS)
			fmt.Fprintf(&b, "| agent %s at %d connections: CPU, RSS | %.2f %% of a core (%.2f s user + %.2f s sys in %.0f s), %.1f MiB (peak %.1f) | %s: %s, %s |\n",
				a.Host, a.Conns, a.CPUPercent, a.UserSeconds, a.SysSeconds, s.Seconds, a.RSSMiB, a.HWMMiB, target,
				met(a.CPUPercent <= targetAgentCPU), met(a.RSSMiB <= targetAgentRSS))
		}
		fmt.Fprintf(&b, "| steady imbalance, hosts (max/mean connections) | %.3f (%s) | |\n", s.Imbalance, joinInts(s.PerHost, " / "))
		fmt.Fprintf(&b, "| spread over the HAProxies (max/mean CurrConns) | %.3f (%d–%d) | |\n", s.HAProxySpread, slices.Min(s.PerHAProxy), slices.Max(s.PerHAProxy))
	}
	if d := r.Drain; d != nil {
		how := "returned"
		if d.Error != "" {
			how = "**gave up**"
		}
		fmt.Fprintf(&b, "| drain %s's %d at %d/s (`%s`) | %s after %.1f s (the host was empty after %.1f s); %d shed, %d reconnects | ≤ %.0f s: %s |\n",
			d.Host, d.Held, d.ShedRate, d.Command, how, d.Seconds, d.EmptySeconds, d.Shed, d.Reconnects, targetDrainSecs, met(d.Error == "" && d.Seconds <= targetDrainSecs))
		fmt.Fprintf(&b, "| clients during the drain | longest disconnect %.0f ms, %d over 5 s, %d messages lost, %d of %d connected %.1f s after the start; kernel: %s | |\n",
			d.LongestDisconnect*1000, d.Failures, d.Lost, d.Connected, p.Conns, d.AllBackSeconds, tcpLine(d.TCP))
	}
	if rb := r.Rebalance; rb != nil {
		reached := "not reached"
		if rb.Seconds >= 0 {
			reached = fmt.Sprintf("%.1f s", rb.Seconds)
		}
		fmt.Fprintf(&b, "| %s joins %d hosts (`hafeed ready`, rebalance on): 90 %% of its fair %d | %s; %d moved (agents shed %d); then %s (max/mean %.3f) | |\n",
			rb.Host, rb.Hosts-1, rb.Fair, reached, rb.Moved, rb.Shed, joinInts(rb.Final, " / "), rb.FinalImbalance)
		fmt.Fprintf(&b, "| clients during the rebalancing | longest disconnect %.0f ms, %d over 5 s, %d messages lost; kernel: %s | |\n",
			rb.LongestDisconnect*1000, rb.Failures, rb.Lost, tcpLine(rb.TCP))
	}
	if e := r.End; r.Connect.Clients > 0 {
		fmt.Fprintf(&b, "| clients lost (disconnected > 5 s, or not connected at the end) | %d (%d of %d connected at the end; %d messages lost, %d mismatched, %d echo timeouts) | %d: %s |\n",
			r.lostClients(), e.Connected, p.Conns, e.Lost, e.Mismatched, e.EchoTimeouts, targetLostClient, met(r.lostClients() <= targetLostClient))
	}
	if s := r.Steady; s != nil {
		fmt.Fprintf(&b, "\nSteady window (%.0f s): host CPU %.0f %% busy (both CPUs, this benchmark and other jobs included), load average %s at its start and %s at its end; CPU by kind of process: %s; memory (VmRSS): %s, %.1f GiB available on the machine. TCP sockets in the kernel's table: %d in use, %d in TIME-WAIT.\n",
			s.Seconds, s.HostBusy, s.LoadStart, s.LoadEnd, groupLine(s.GroupCores, "%.2f cores"), groupLine(s.GroupMiB, "%.0f MiB"), s.MemAvailableMiB/1024, s.Sockstat.InUse, s.Sockstat.TimeWait)
		b.WriteString("\n| agent | last count took | count age | weight | HAProxies polling | runtime endpoints |\n|---|---:|---:|---:|---:|---:|\n")
		for _, a := range s.Agents {
			fmt.Fprintf(&b, "| %s | %.0f ms (%d connections) | %.0f s | %d %% | %d | %d |\n", a.Host, a.CountMs, a.Counted, a.CountAge, a.Weight, a.Peers, a.Endpoints)
		}
	}
	if missed := r.missed(); len(missed) > 0 {
		fmt.Fprintf(&b, "\nTargets missed: %s.\n", strings.Join(missed, "; "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// tcpLine prints the kernel counters that rose.
func tcpLine(m map[string]int64) string {
	var parts []string
	for _, k := range tcpCounters {
		if v := m[k]; v != 0 {
			parts = append(parts, fmt.Sprintf("%s +%d", k, v))
		}
	}
	if len(parts) == 0 {
		return "no SYN retransmitted, no listen queue overflow"
	}
	return strings.Join(parts, ", ")
}

func joinInts(v []int, sep string) string {
	var s []string
	for _, n := range v {
		s = append(s, fmt.Sprint(n))
	}
	return strings.Join(s, sep)
}

func groupLine(g map[string]float64, format string) string {
	var keys []string
	for k := range g {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+" "+fmt.Sprintf(format, g[k]))
	}
	return strings.Join(parts, ", ")
}
