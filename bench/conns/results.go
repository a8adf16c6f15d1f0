package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/hafeed/hafeed/bench/internal/procstat"
)

type machineInfo struct {
	NumCPU  int    `json:"nproc"`
	Kernel  string `json:"kernel"`
	GoBuild string `json:"go"`
}

// method is one way of counting, timed over several runs.
type method struct {
	Name    string `json:"name"`
	Command string `json:"command"`
	Via     string `json:"via,omitempty"`
	// Counts are what each run counted; Runs their wall time in ms.
	Counts    []int     `json:"counts"`
	Runs      []float64 `json:"runs_ms"`
	MedianMs  float64   `json:"median_ms"`
	P90Ms     float64   `json:"p90_ms"`
	RatioVsSS float64   `json:"ratio_vs_ss"`
}

func (m *method) add(n int, d time.Duration) {
	m.Counts = append(m.Counts, n)
	m.Runs = append(m.Runs, float64(d.Nanoseconds())/1e6)
	s := slices.Sorted(slices.Values(m.Runs))
	m.MedianMs = percentile(s, 50)
	m.P90Ms = percentile(s, 90)
}

// percentile is the nearest-rank percentile of sorted values (the median of
// an even count is the mean of the middle two).
func percentile(s []float64, p int) float64 {
	if len(s) == 0 {
		return 0
	}
	if p == 50 && len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	rank := (p*len(s) + 99) / 100 // ceil(p/100 * n)
	return s[max(rank, 1)-1]
}

// counted is what the runs counted: the count, or "min–max" when it varied.
func (m *method) counted() string {
	lo, hi := slices.Min(m.Counts), slices.Max(m.Counts)
	if lo == hi {
		return fmt.Sprint(lo)
	}
	return fmt.Sprintf("%d–%d", lo, hi)
}

type agentResult struct {
	Command    string  `json:"command"`
	Settle     float64 `json:"settle_s"`
	Window     float64 `json:"window_s"`
	CPUPercent float64 `json:"cpu_percent_of_one_core"`
	CPUSeconds float64 `json:"cpu_s_in_window"`
	// UserSeconds and SysSeconds split CPUSeconds: utime and stime.
	UserSeconds float64 `json:"user_s_in_window"`
	SysSeconds  float64 `json:"sys_s_in_window"`
	RSSMiB      float64 `json:"rss_max_mib"`
	HWMMiB      float64 `json:"rss_peak_lifetime_mib"`
	// What the agent's own last sample saw (hafeed status --json).
	Connections int     `json:"sample_connections"`
	Method      string  `json:"sample_conn_method"`
	SampleMs    float64 `json:"sample_duration_ms"`
	Reply       string  `json:"reply"`
	// HostBusy is the busy share of all the host's CPUs over the window,
	// the agent included: anything else running shows here.
	HostBusy float64 `json:"host_cpu_busy_percent"`
}

type target struct {
	What     string `json:"what"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
}

type results struct {
	Conns        int      `json:"connections"`
	Port         int      `json:"port"`
	Servers      int      `json:"server_processes"`
	Clients      int      `json:"client_processes"`
	Sources      []string `json:"source_addresses"`
	Somaxconn    int      `json:"somaxconn"`
	NoFile       uint64   `json:"rlimit_nofile"`
	SetupSeconds float64  `json:"setup_s"`
	// SockstatBefore is /proc/net/sockstat's TCP line before the timings:
	// every count walks all of these sockets, not only the ones it counts.
	SockstatBefore procstat.Sockstat `json:"tcp_sockstat_before_timings"`
	// HostBusyTimings is the busy share of all the host's CPUs while the
	// counts were timed, this benchmark's own work included.
	HostBusyTimings float64      `json:"host_cpu_busy_percent_timings"`
	Machine         machineInfo  `json:"machine"`
	Methods         []method     `json:"methods"`
	Agent           *agentResult `json:"agent,omitempty"`
	Targets         []target     `json:"targets"`
}

// finish fills in the ratios and the verdicts on the targets.
func (r *results) finish() {
	if len(r.Methods) < 2 {
		return
	}
	hafeed, ss := &r.Methods[0], &r.Methods[1]
	for i := range r.Methods {
		if ss.MedianMs > 0 {
			r.Methods[i].RatioVsSS = r.Methods[i].MedianMs / ss.MedianMs
		}
	}
	r.Targets = nil
	r.Targets = append(r.Targets, target{
		What:     "hafeed within 1.5× of ss (median)",
		Measured: fmt.Sprintf("%.2f×", hafeed.RatioVsSS),
		Met:      hafeed.RatioVsSS <= 1.5,
	})
	if len(r.Methods) > 2 {
		gp := &r.Methods[2]
		x := gp.MedianMs / hafeed.MedianMs
		r.Targets = append(r.Targets, target{
			What:     "hafeed far below gopsutil (taken as ≥ 10× faster, median)",
			Measured: fmt.Sprintf("gopsutil %.0f× slower than hafeed", x),
			Met:      x >= 10,
		})
	}
	if a := r.Agent; a != nil {
		r.Targets = append(r.Targets,
			target{What: "agent CPU ≤ 1% of one core", Measured: fmt.Sprintf("%.2f%%", a.CPUPercent), Met: a.CPUPercent <= 1},
			target{What: "agent RSS ≤ 30 MiB", Measured: fmt.Sprintf("%.1f MiB", a.RSSMiB), Met: a.RSSMiB <= 30},
		)
	}
}

// countMismatches says which methods counted something else than the
// connections that were opened in most runs. A single run off by a few is
// tolerated (and shows as a range in the table): a dump read in chunks can
// see a socket twice, or miss one, when other sockets of the host come and
// go meanwhile.
func (r *results) countMismatches() string {
	var bad []string
	for _, m := range r.Methods {
		exact := 0
		for _, n := range m.Counts {
			if n == r.Conns {
				exact++
			}
		}
		if 2*exact <= len(m.Counts) {
			bad = append(bad, fmt.Sprintf("%s counted %s, want %d", m.Name, m.counted(), r.Conns))
		}
	}
	if a := r.Agent; a != nil && a.Connections != r.Conns {
		bad = append(bad, fmt.Sprintf("the agent's last sample saw %d, want %d", a.Connections, r.Conns))
	}
	return strings.Join(bad, "; ")
}

func (r *results) writeJSON(w io.Writer) error {
	r.finish()
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func (r *results) writeMarkdown(w io.Writer) error {
	r.finish()
	var b strings.Builder
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	fmt.Fprintf(&b, "%d established connections to 127.0.0.1:%d, held by %d server and %d client processes (sources %s–%s), set up in %.1f s.\n",
		r.Conns, r.Port, r.Servers, r.Clients, r.Sources[0], r.Sources[len(r.Sources)-1], r.SetupSeconds)
	fmt.Fprintf(&b, "TCP sockets on the host during the timings (/proc/net/sockstat): %d in use, %d in TIME-WAIT.\n", r.SockstatBefore.InUse, r.SockstatBefore.TimeWait)
	fmt.Fprintf(&b, "Host CPU busy (all CPUs, /proc/stat, this benchmark included): %.0f%% while timing the counts", r.HostBusyTimings)
	if r.Agent != nil {
		fmt.Fprintf(&b, ", %.0f%% during the agent window", r.Agent.HostBusy)
	}
	b.WriteString(".\n")
	fmt.Fprintf(&b, "Machine: %d CPUs, kernel %s, benchmark built with %s.\n\n", r.Machine.NumCPU, r.Machine.Kernel, r.Machine.GoBuild)
	b.WriteString("| method | connections counted | median ms | p90 ms | ratio vs ss |\n")
	b.WriteString("|---|---:|---:|---:|---:|\n")
	for _, m := range r.Methods {
		name := m.Name
		switch m.Name {
		case "hafeed":
			name = fmt.Sprintf("hafeed `metrics.Conns{Ports: []uint16{%d}}.Count` (%s)", r.Port, m.Via)
		case "ss":
			name = "`" + m.Command + "`"
		case "gopsutil":
			name = "gopsutil v4 `net.ConnectionsWithContext(ctx, \"tcp\")`, filtered by port and ESTABLISHED"
		}
		fmt.Fprintf(&b, "| %s, %d runs | %s | %s | %s | %.2f× |\n", cell(name), len(m.Runs), m.counted(), ms(m.MedianMs), ms(m.P90Ms), m.RatioVsSS)
	}
	if a := r.Agent; a != nil {
		fmt.Fprintf(&b, "\n| agent `hafeed run --ports %d --interval 1s --log-level warn`, %.0f s window after %.0f s | measured | target |\n", r.Port, a.Window, a.Settle)
		b.WriteString("|---|---:|---:|\n")
		fmt.Fprintf(&b, "| CPU (utime+stime from /proc/PID/stat), %% of one core | %.2f %% (%.2f s user + %.2f s sys) | ≤ 1 %% |\n", a.CPUPercent, a.UserSeconds, a.SysSeconds)
		fmt.Fprintf(&b, "| RSS (max VmRSS over the window) | %.1f MiB | ≤ 30 MiB |\n", a.RSSMiB)
		fmt.Fprintf(&b, "| lifetime peak RSS (VmHWM) | %.1f MiB | |\n", a.HWMMiB)
		fmt.Fprintf(&b, "| agent's last sample (hafeed status) | %d connections, %s, %s ms | |\n", a.Connections, a.Method, ms(a.SampleMs))
	}
	b.WriteString("\nTargets:\n\n")
	for _, t := range r.Targets {
		v := "met"
		if !t.Met {
			v = "**MISSED**"
		}
		fmt.Fprintf(&b, "- %s: %s — %s\n", t.What, t.Measured, v)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func ms(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
