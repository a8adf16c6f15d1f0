package agent

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/internal/testutil"
)

// TestMetricsEndpoint scrapes a running agent and lints what it serves.
func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Metrics.Listen = "127.0.0.1:0"
	a := startAgent(t, cfg)
	call(t, cfg.ControlSocket, control.CommandDrain)
	a.countShed("drain", 3)

	problems, err := promtest.CollectAndLint(collector{a: a, version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	want := `
# HELP hafeed_admin_state 1 for the current admin state (ready, drain, maint), 0 for the others.
# TYPE hafeed_admin_state gauge
hafeed_admin_state{state="drain"} 1
hafeed_admin_state{state="maint"} 0
hafeed_admin_state{state="ready"} 0
# HELP hafeed_shed_connections_total Connections closed to move them, by reason (drain, rebalance).
# TYPE hafeed_shed_connections_total counter
hafeed_shed_connections_total{reason="drain"} 3
hafeed_shed_connections_total{reason="rebalance"} 0
`
	if err := promtest.CollectAndCompare(collector{a: a, version: "test"}, strings.NewReader(want), "hafeed_admin_state", "hafeed_shed_connections_total"); err != nil {
		t.Error(err)
	}
	// The load model's parts are exported once there is a sample.
	testutil.Poll(t, 5*time.Second, "a sample with the load model", func() error {
		for _, name := range []string{"hafeed_model_baseline_ratio", "hafeed_model_connection_cost", "hafeed_model_headroom_ratio", "hafeed_model_connection_share", "hafeed_suggested_reference_capacity"} {
			if n := promtest.CollectAndCount(collector{a: a, version: "test"}, name); n != 1 {
				return fmt.Errorf("%s: %d series, want 1", name, n)
			}
		}
		return nil
	})
}

// TestMetricsHTTP checks the /metrics endpoint over HTTP.
func TestMetricsHTTP(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	a := New(Options{Config: cfg, Version: "test"})
	m, err := newMetricsServer("127.0.0.1:0", collector{a: a, version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	resp, err := http.Get("http://" + m.ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`hafeed_build_info{goversion="`, `hafeed_admin_state{state="ready"} 1`, "go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	cancel()
	if err := testutil.Recv(t, done, waitLimit, "Run to return after cancel"); err != nil {
		t.Errorf("Run() = %v after cancel", err)
	}
}
