package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/internal/testutil"
)

// closesAll is a closer that closes every connection asked for.
type closesAll struct{}

func (closesAll) Close(_ context.Context, n int, _ string) (int, error) { return n, nil }
func (closesAll) Via() string                                           { return "test" }

// TestMetricsEndpoint scrapes a running agent and lints what it serves.
func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Metrics.Listen = "127.0.0.1:0"
	a := startAgent(t, cfg)
	call(t, cfg.ControlSocket, control.CommandDrain)
	if _, err := a.tally.Counted(closesAll{}).Close(context.Background(), 3, "drain"); err != nil {
		t.Fatal(err)
	}

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

// TestMetricsWeightNeverZero checks that hafeed_weight_percent is absent,
// not 0, while the agent reports no weight (the start-up blackout), since
// 0 reads as a drained server and would fire an alert at every restart
// (issue 17), and that it is there once a weight is reported.
func TestMetricsWeightNeverZero(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Policy.Blackout = time.Hour
	a := startAgent(t, cfg)
	c := collector{a: a, version: "test"}
	if st := a.Status(); st.Sample == nil || st.Sample.WeightPercent != 0 {
		t.Fatalf("sample in the blackout = %+v, want one with no weight reported", st.Sample)
	}
	if n := promtest.CollectAndCount(c, "hafeed_weight_percent"); n != 0 {
		t.Errorf("hafeed_weight_percent in the blackout: %d series, want none", n)
	}
	if n := promtest.CollectAndCount(c, "hafeed_connections"); n != 1 {
		t.Errorf("hafeed_connections in the blackout: %d series, want 1 (only the weight is left out)", n)
	}

	b := startAgent(t, testConfig(t)) // blackout 0: the weight is known at once
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(collector{a: b, version: "test"})
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var weights []float64
	for _, f := range families {
		if f.GetName() == "hafeed_weight_percent" {
			for _, m := range f.GetMetric() {
				weights = append(weights, m.GetGauge().GetValue())
			}
		}
	}
	if len(weights) != 1 || weights[0] < 1 {
		t.Errorf("hafeed_weight_percent with a weight reported = %v, want one value of at least 1", weights)
	}
}

// TestMetricsSourcePortUsage opens real connections from one source to
// two watched ports, 8 and 3 of a 10-port range, and checks that
// hafeed_source_port_usage_ratio carries the source's busiest path, 0.8,
// not the 1.1 of its connections added up: the range counts toward each
// port apart.
func TestMetricsSourcePortUsage(t *testing.T) {
	t.Parallel()
	a, b := listenTCP(t), listenTCP(t)
	cfg := testConfig(t)
	cfg.Sources.Ports = []uint16{port(a), port(b)}
	cfg.SourcePorts.Range = "1000-1009"
	ag := startAgent(t, cfg)
	dialN(t, a, 8)
	dialN(t, b, 3)
	want := `
# HELP hafeed_source_port_usage_ratio Connections from an HAProxy source address over its source port range, toward the address and port of this host it uses most (source_ports): at 1 its connects there fail.
# TYPE hafeed_source_port_usage_ratio gauge
hafeed_source_port_usage_ratio{peer="127.0.0.1"} 0.8
`
	testutil.Poll(t, 5*time.Second, "the source's usage in /metrics", func() error {
		return promtest.CollectAndCompare(collector{a: ag, version: "test"}, strings.NewReader(want), "hafeed_source_port_usage_ratio")
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

// TestMetricsClosesIdleKeepAlives checks that a scraper's keep-alive
// connection is closed once idle (issue 11, item 6: 50 of 50 stayed open
// after 70 s, which is how the descriptors ran out).
func TestMetricsClosesIdleKeepAlives(t *testing.T) {
	t.Parallel()
	a := New(Options{Config: testConfig(t), Version: "test"})
	m, err := newMetricsServer("127.0.0.1:0", collector{a: a, version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if m.srv.IdleTimeout != metricsIdleTimeout || m.srv.ReadTimeout <= 0 || m.srv.WriteTimeout <= 0 {
		t.Errorf("metrics server timeouts: idle %v, read %v, write %v; want all set", m.srv.IdleTimeout, m.srv.ReadTimeout, m.srv.WriteTimeout)
	}
	m.srv.IdleTimeout = 200 * time.Millisecond // the test's, not the real one
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() {
		cancel()
		testutil.Recv(t, done, waitLimit, "Run to return after cancel")
	}()
	conn, err := net.Dial("tcp", m.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(waitLimit))
	fmt.Fprintf(conn, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	start := time.Now()
	if n, err := conn.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("idle keep-alive: read %d bytes, %v; want the server to close it", n, err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("idle keep-alive closed after %v, want about its idle timeout", took)
	}
}

// TestLimitListener checks that Accept waits while n connections are
// open and goes on once one closes.
func TestLimitListener(t *testing.T) {
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := newLimitListener(inner, 2)
	defer ln.Close()
	accepted := make(chan net.Conn, 3)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	for range 3 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	first := testutil.Recv(t, accepted, waitLimit, "the first connection")
	second := testutil.Recv(t, accepted, waitLimit, "the second connection")
	// Absence can only be watched for a while.
	select {
	case <-accepted:
		t.Fatal("a third connection was accepted while two were open")
	case <-time.After(100 * time.Millisecond):
	}
	second.Close()
	testutil.Recv(t, accepted, waitLimit, "the third connection, once the second closed").Close()
	first.Close()
	select {
	case c, ok := <-accepted:
		if ok {
			t.Errorf("accepted %v beyond the three dialled", c.RemoteAddr())
		}
	default:
	}
}

// listenTCP is a loopback listener that accepts and holds every
// connection until the test ends.
func listenTCP(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	return ln
}

// dialN opens n connections to ln, closed when the test ends.
func dialN(t *testing.T, ln net.Listener, n int) {
	t.Helper()
	for range n {
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
}

func port(ln net.Listener) uint16 { return uint16(ln.Addr().(*net.TCPAddr).Port) }
