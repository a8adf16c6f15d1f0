package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hafeed/hafeed/agent/policy"
)

// collector exposes the agent's state to Prometheus, read at scrape time
// from the same status `hafeed status` shows.
type collector struct {
	a       *Agent
	version string
}

var (
	descBuildInfo   = prometheus.NewDesc("hafeed_build_info", "hafeed's version; always 1.", []string{"version", "goversion"}, nil)
	descAdmin       = prometheus.NewDesc("hafeed_admin_state", "1 for the current admin state (ready, drain, maint), 0 for the others.", []string{"state"}, nil)
	descWeight      = prometheus.NewDesc("hafeed_weight_percent", "Weight reported to HAProxy, in percent of the configured weight; absent while none is reported (the start-up blackout, when HAProxy keeps the weight it has). Never 0: see hafeed_admin_state for drain and maint.", nil, nil)
	descMaxconn     = prometheus.NewDesc("hafeed_maxconn", "maxconn reported to HAProxy by the overload guard; absent when none is sent.", nil, nil)
	descUtilisation = prometheus.NewDesc("hafeed_utilisation_ratio", "Load relative to the targets (1 means at target), from the bottleneck signal.", nil, nil)
	descCapacity    = prometheus.NewDesc("hafeed_capacity_connections", "Estimated connections this host holds at its targets.", nil, nil)
	descBaseline    = prometheus.NewDesc("hafeed_model_baseline_ratio", "Utilisation (relative to the targets) that the host has without connections: measured while it held none, else assumed.", []string{"measured"}, nil)
	descCost        = prometheus.NewDesc("hafeed_model_connection_cost", "Utilisation that reference_capacity connections add on top of the baseline (1: what the reference assumes).", nil, nil)
	descHeadroom    = prometheus.NewDesc("hafeed_model_headroom_ratio", "Share of the targets left for connections: 1 - baseline.", nil, nil)
	descShare       = prometheus.NewDesc("hafeed_model_connection_share", "Part of the utilisation above the baseline, the part the connections cause.", nil, nil)
	descSuggested   = prometheus.NewDesc("hafeed_suggested_reference_capacity", "A reference_capacity that fits this host, set when its weight has sat under 20% or at the 256% cap for minutes; 0 otherwise.", nil, nil)
	descConns       = prometheus.NewDesc("hafeed_connections", "Established inbound TCP connections on the watched ports.", nil, nil)
	descSignal      = prometheus.NewDesc("hafeed_signal_ratio", "Last good reading of a load signal as a fraction (cpu, memory, pressure, app).", []string{"signal"}, nil)
	descSignalStale = prometheus.NewDesc("hafeed_signal_stale", "1 when the signal's last read failed and its value is old.", []string{"signal"}, nil)
	descSourceTime  = prometheus.NewDesc("hafeed_source_duration_seconds", "How long the last read of each source took.", []string{"source"}, nil)
	descSampleTime  = prometheus.NewDesc("hafeed_sample_duration_seconds", "How long the last sample of every source took.", nil, nil)
	descReplies     = prometheus.NewDesc("hafeed_agent_check_replies_total", "Agent-check replies served, per polling HAProxy address.", []string{"peer"}, nil)
	descShed        = prometheus.NewDesc("hafeed_shed_connections_total", "Connections closed to move them, by reason (drain, rebalance).", []string{"reason"}, nil)
	descPushErrors  = prometheus.NewDesc("hafeed_runtime_errors_total", "Failed runtime API calls (pushes, discovery, restart checks), per HAProxy endpoint.", []string{"endpoint"}, nil)

	// The backend's figures (hafeed fleet), the same on every agent of the
	// backend; absent without a runtime endpoint or when HAProxy cannot be
	// read at scrape time.
	descBackendConns    = prometheus.NewDesc("hafeed_backend_connections", "Connections of the backend's servers in rotation, summed over the HAProxies.", []string{"backend"}, nil)
	descBackendCapacity = prometheus.NewDesc("hafeed_backend_capacity_connections", "Connections the backend's servers in rotation hold at their targets: their weights times reference_capacity / 100.", []string{"backend"}, nil)
	descBackendUtil     = prometheus.NewDesc("hafeed_backend_utilisation_ratio", "hafeed_backend_connections / hafeed_backend_capacity_connections: 1 means every host at its targets.", []string{"backend"}, nil)
	descBackendServers  = prometheus.NewDesc("hafeed_backend_servers", "The backend's servers by state (ready: in rotation).", []string{"backend", "state"}, nil)
	descBackendDesired  = prometheus.NewDesc("hafeed_backend_desired_servers", "Servers the backend needs for fleet.target_utilisation, as Kubernetes' HPA computes it: ceil(in rotation x utilisation / target), unchanged within fleet.tolerance.", []string{"backend"}, nil)
	descSourcePorts     = prometheus.NewDesc("hafeed_source_port_usage_ratio", "Connections from an HAProxy source address over its source port range, toward the address and port of this host it uses most (source_ports): at 1 its connects there fail.", []string{"peer"}, nil)
	descDrainCost       = prometheus.NewDesc("hafeed_drain_cost_connections", "Connections draining this host would move: its sessions over the HAProxies.", []string{"backend", "server"}, nil)
)

// fleetScrapeTimeout bounds the runtime API reads of one scrape.
const fleetScrapeTimeout = 2 * time.Second

func (c collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.a.Status()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(descBuildInfo, 1, c.version, runtime.Version())
	for _, state := range []string{"ready", "drain", "maint"} {
		v := 0.0
		if st.Admin == state {
			v = 1
		}
		gauge(descAdmin, v, state)
	}
	if s := st.Sample; s != nil {
		// 0 would read as a drained server: leave the series out instead.
		if s.WeightPercent > 0 {
			gauge(descWeight, float64(s.WeightPercent))
		}
		if s.SendMaxconn {
			gauge(descMaxconn, float64(s.Maxconn))
		}
		gauge(descUtilisation, s.Utilisation)
		gauge(descCapacity, s.Capacity)
		gauge(descBaseline, s.Model.Baseline, fmt.Sprint(s.Model.Measured))
		gauge(descCost, s.Model.Cost)
		gauge(descHeadroom, s.Model.Headroom)
		gauge(descShare, s.Model.Share)
		gauge(descSuggested, float64(s.SuggestedReference))
		gauge(descConns, float64(s.Connections))
		gauge(descSampleTime, s.Duration.Seconds())
		for name, sig := range s.Signals {
			gauge(descSourceTime, sig.Duration.Seconds(), name)
			if name == policy.SignalConnections {
				continue
			}
			if !sig.At.IsZero() {
				gauge(descSignal, sig.Value, name)
			}
			stale := 0.0
			if sig.Stale {
				stale = 1
			}
			gauge(descSignalStale, stale, name)
		}
	}
	for _, p := range st.Peers {
		counter(descReplies, float64(p.Polls), p.Addr)
	}
	for reason, n := range c.a.tally.Totals() {
		counter(descShed, float64(n), reason)
	}
	for _, e := range st.HAProxy {
		counter(descPushErrors, float64(e.Errors), e.Runtime)
	}
	// A source's busiest path: the rows come busiest first.
	seen := map[string]bool{}
	for _, sp := range st.SourcePorts {
		if !seen[sp.Peer] {
			seen[sp.Peer] = true
			gauge(descSourcePorts, sp.Usage, sp.Peer)
		}
	}
	if len(st.HAProxy) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), fleetScrapeTimeout)
	defer cancel()
	f, err := c.a.Fleet(ctx)
	if err != nil {
		return
	}
	gauge(descBackendConns, float64(f.Connections), f.Backend)
	gauge(descBackendCapacity, float64(f.CapacityConnections), f.Backend)
	gauge(descBackendUtil, f.Utilisation, f.Backend)
	gauge(descBackendDesired, float64(f.DesiredServers), f.Backend)
	byState := map[string]int{policy.StateReady: 0, policy.StateDrain: 0, policy.StateMaint: 0, policy.StateDown: 0}
	for _, s := range f.Servers {
		byState[s.State]++
		if s.Name == f.Self {
			gauge(descDrainCost, float64(s.Connections), f.Backend, s.Name)
		}
	}
	for state, n := range byState {
		gauge(descBackendServers, float64(n), f.Backend, state)
	}
}

// maxMetricsConns bounds the open /metrics connections; metricsIdleTimeout
// closes a keep-alive connection no request came on for that long.
const (
	maxMetricsConns    = 32
	metricsIdleTimeout = 15 * time.Second
)

// metricsServer serves /metrics until ctx ends.
type metricsServer struct {
	ln  net.Listener
	srv *http.Server
}

func newMetricsServer(addr string, c collector) (*metricsServer, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(c); err != nil {
		return nil, err
	}
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("GET /fleet", fleetHandler{c.a})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener on %s: %w", addr, err)
	}
	// Scrapers get a bounded number of connections, each with deadlines,
	// and idle keep-alives are closed, so that none can pile up.
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       metricsIdleTimeout,
	}
	return &metricsServer{ln: newLimitListener(ln, maxMetricsConns), srv: srv}, nil
}

func (m *metricsServer) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		m.srv.Shutdown(shutdown)
	})
	defer stop()
	if err := m.srv.Serve(m.ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// fleetHandler serves the JSON of hafeed fleet --json, for autoscalers
// that read an HTTP endpoint (KEDA's metrics-api scaler): 503 when HAProxy
// cannot be read, 501 without a runtime endpoint, each with the reason.
type fleetHandler struct{ a *Agent }

func (h fleetHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), fleetScrapeTimeout)
	defer cancel()
	f, err := h.a.Fleet(ctx)
	switch {
	case errors.Is(err, ErrNoRuntime):
		http.Error(w, err.Error(), http.StatusNotImplemented)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(f)
}
