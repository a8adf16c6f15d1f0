package sampler

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hafeed/hafeed/agent/config"
	"github.com/hafeed/hafeed/agent/policy"
	"github.com/hafeed/hafeed/metrics"
)

// fakeSource returns its value, or its error when set.
type fakeSource struct {
	value float64
	err   error
}

func (f *fakeSource) read(context.Context) (float64, error) { return f.value, f.err }

// t0 is when the tests' clocks start.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// TestSamplerDegradesGently checks what a failing source does: the score
// uses the fresh signals and a stale one until stale_after; with no fresh
// signal at all the weight is held (fail-static).
func TestSamplerDegradesGently(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	src := config.SourcesConfig{Ports: []uint16{uint16(ln.Addr().(*net.TCPAddr).Port)}, CPU: config.ScopeNone, Memory: config.ScopeNone, Pressure: config.ScopeNone, ProcRoot: "/proc"}
	s := New(src)
	cpu, app := &fakeSource{value: 0.4}, &fakeSource{value: 0.3}
	s.sources = map[string]*builtSource{policy.SignalCPU: {source: cpu}, policy.SignalApp: {source: app}}
	now := t0
	s.now = func() time.Time { return now }
	p := testPolicy()
	p.Blackout, p.MinConnections, p.IdleUtilisation = 0, 0, 0.01
	p.Targets = policy.Targets{CPU: 0.8, App: 1}
	p.StaleAfter = 5 * time.Second

	sample := func() Sample {
		t.Helper()
		now = now.Add(time.Second)
		return s.Sample(context.Background(), p, 1, 0)
	}
	got := sample()
	if got.Bottleneck != policy.SignalCPU || got.Utilisation != 0.5 {
		t.Fatalf("both fresh: utilisation %v (%s), want 0.5 (cpu)", got.Utilisation, got.Bottleneck)
	}

	cpu.err = errors.New("cgroup vanished")
	got = sample()
	if !got.Signals[policy.SignalCPU].Stale || !strings.Contains(got.Signals[policy.SignalCPU].Error, "cgroup vanished") {
		t.Errorf("failed cpu: signal %+v, want stale with the error", got.Signals[policy.SignalCPU])
	}
	if len(got.Errors) != 1 || !strings.HasPrefix(got.Errors[0], "cpu: ") {
		t.Errorf("errors = %q, want the cpu failure", got.Errors)
	}
	if got.Utilisation != 0.5 {
		t.Errorf("a source stale for 1s still counts: utilisation %v, want 0.5", got.Utilisation)
	}

	for range 5 {
		got = sample()
	}
	if got.Bottleneck != policy.SignalApp || got.Utilisation != 0.3 {
		t.Errorf("cpu stale past stale_after: utilisation %v (%s), want 0.3 from app", got.Utilisation, got.Bottleneck)
	}
	held := got.WeightPercent

	app.err = errors.New("connection refused")
	for range 7 {
		got = sample()
		if !strings.Contains(got.Reason, "fail-static") {
			held = got.WeightPercent // app still counts until stale_after
		}
	}
	if got.WeightPercent != held || !strings.Contains(got.Reason, "fail-static") {
		t.Errorf("no fresh signal: weight %d (%s), want %d held fail-static", got.WeightPercent, got.Reason, held)
	}

	cpu.err, app.err = nil, nil
	cpu.value = 0.8
	got = sample()
	if got.Utilisation != 1 || strings.Contains(got.Reason, "holding") {
		t.Errorf("after recovery: utilisation %v (%s), want 1 and a new estimate", got.Utilisation, got.Reason)
	}
}

func TestSamplerKeepsSourcesAcrossReload(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := config.Default().Sources
	src.Ports = []uint16{1}
	s := New(src)
	if _, err := s.sources[policy.SignalCPU].read(ctx); !errors.Is(err, metrics.ErrNoData) {
		t.Fatalf("first cpu read: %v, want ErrNoData", err)
	}
	s.SetSources(src)
	if _, err := s.sources[policy.SignalCPU].read(ctx); err != nil {
		t.Errorf("cpu read after a reload with the same settings: %v, want a rate from the kept history", err)
	}
	src.CPU = config.ScopeNone
	s.SetSources(src)
	if _, ok := s.sources[policy.SignalCPU]; ok {
		t.Errorf("cpu: none still samples cpu")
	}
}

// budgetSampler is a sampler that counts connections on one port within a
// budget of 1% of a core, with no other source, on a clock the test sets
// through the returned pointer, after its first sample at t0.
func budgetSampler(t *testing.T) (*Sampler, policy.PolicyConfig, *time.Time) {
	t.Helper()
	src := config.SourcesConfig{Ports: []uint16{1}, CPU: config.ScopeNone, Memory: config.ScopeNone, Pressure: config.ScopeNone, ProcRoot: "/proc", CountBudget: 0.01}
	s := New(src)
	p := testPolicy()
	now := new(time.Time)
	*now = t0
	s.now = func() time.Time { return *now }
	s.Sample(context.Background(), p, 1, 0)
	return s, p, now
}

// TestSamplerCountBudget checks that a slow count is repeated only as often
// as the budget allows, and that the last count keeps serving meanwhile.
func TestSamplerCountBudget(t *testing.T) {
	t.Parallel()
	s, p, now := budgetSampler(t)
	if s.counts.At() != t0 {
		t.Fatalf("first sample did not count")
	}
	s.counts.Counted(t0, 100*time.Millisecond) // as if the count had taken that long
	for i := 1; i < 10; i++ {
		*now = t0.Add(time.Duration(i) * time.Second)
		got := s.Sample(context.Background(), p, 1, 0)
		if s.counts.At() != t0 {
			t.Fatalf("counted again after %v; a 100ms count at 1%% budget is due every 10s", now.Sub(t0))
		}
		if !got.Signals[policy.SignalConnections].Stale {
			t.Errorf("a count %v old is not marked stale", now.Sub(t0))
		}
	}
	*now = t0.Add(10 * time.Second)
	s.Sample(context.Background(), p, 1, 0)
	if s.counts.At() != *now {
		t.Errorf("no count 10s after a 100ms one")
	}
}

// testPolicy is the default policy with a reference capacity of 1000 and
// no smoothing, so that one step shows the estimate.
func testPolicy() policy.PolicyConfig {
	p := policy.DefaultConfig()
	p.ReferenceCapacity = 1000
	p.Smoothing = 0
	return p
}
