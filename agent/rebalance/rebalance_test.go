package rebalance

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/hafeed/hafeed/agent/policy"
	"github.com/hafeed/hafeed/agent/shed"
	"github.com/hafeed/hafeed/internal/testutil"
	hook "github.com/hafeed/hafeed/shed"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const waitLimit = 10 * time.Second

// view is a backend view the test sets; hang makes it wait for its
// context, as a hung HAProxy does.
type view struct {
	mu      sync.Mutex
	servers []policy.ServerLoad
	hang    bool
}

func (v *view) BackendView(ctx context.Context) ([]policy.ServerLoad, string, error) {
	v.mu.Lock()
	servers, hang := v.servers, v.hang
	v.mu.Unlock()
	if hang {
		<-ctx.Done()
		return nil, "", ctx.Err()
	}
	return servers, "a", nil
}

// closer records what it was asked to close.
type closer struct {
	closed  atomic.Int64
	reasons sync.Map
}

func (c *closer) Close(_ context.Context, n int, reason string) (int, error) {
	c.closed.Add(int64(n))
	c.reasons.Store(reason, true)
	return n, nil
}

func (c *closer) Via() string { return "test" }

var _ shed.Closer = (*closer)(nil)

func run(t *testing.T, opts Options) *Rebalancer {
	t.Helper()
	r := New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		testutil.Recv(t, done, waitLimit, "the rebalancer to stop")
	})
	return r
}

// TestRebalancerShedsTheExcessAndSaysWhy runs the rebalancer over a backend
// where this host holds every connection: it sheds with the rebalance
// reason, counts what it shed, and stops shedding when it is drained.
func TestRebalancerShedsTheExcessAndSaysWhy(t *testing.T) {
	t.Parallel()
	v := &view{servers: []policy.ServerLoad{{Name: "a", Conns: 1000, Weight: 100}, {Name: "b", Weight: 100}}}
	c := &closer{}
	var ready atomic.Bool
	ready.Store(true)
	rb := policy.DefaultRebalance()
	rb.Enabled, rb.Sustain, rb.MaxRate = true, time.Millisecond, 0.5
	r := run(t, Options{
		Config:  func() policy.RebalanceConfig { return rb },
		Ready:   ready.Load,
		View:    func() BackendView { return v },
		Local:   func() (int, float64, bool) { return 1000, 0.5, true },
		Closer:  func() shed.Closer { return c },
		Entered: func(time.Time) time.Time { return time.Time{} },
		Log:     zerolog.Nop(),
	})
	testutil.Until(t, waitLimit, "a rebalance shed", func() bool {
		st, ok := r.Status()
		return ok && st.Shed > 0
	})
	if _, ok := c.reasons.Load(hook.ReasonRebalance); !ok {
		t.Error("the rebalancer closed without the rebalance reason")
	}
	st, _ := r.Status()
	if st.Fair != 500 || st.Excess != 500 || int64(st.Shed) > c.closed.Load() {
		t.Errorf("status %+v (closer closed %d), want fair 500, excess 500, shed counted", st, c.closed.Load())
	}
	ready.Store(false)
	testutil.Until(t, waitLimit, "the rebalancer standing down", func() bool {
		st, _ := r.Status()
		return strings.HasPrefix(st.Reason, "not ready")
	})
}

// TestRebalancerStepIsBounded checks that a backend view that hangs ends
// the step at its deadline, with the error in status.
func TestRebalancerStepIsBounded(t *testing.T) {
	t.Parallel()
	v := &view{hang: true}
	rb := policy.DefaultRebalance()
	rb.Enabled = true
	r := run(t, Options{
		Config:  func() policy.RebalanceConfig { return rb },
		Ready:   func() bool { return true },
		View:    func() BackendView { return v },
		Local:   func() (int, float64, bool) { return 0, 0, false },
		Closer:  func() shed.Closer { return nil },
		Entered: func(time.Time) time.Time { return time.Time{} },
		Log:     zerolog.Nop(),
	})
	testutil.Until(t, stepEvery+stepTimeout+time.Second, "the step to end at its deadline", func() bool {
		st, ok := r.Status()
		return ok && strings.Contains(st.Error, "deadline exceeded")
	})
}

// TestRebalancerSheddingIsBoundedByTheHostsOwnCount checks that an
// HAProxy reporting this host at a million sessions, while it holds 50,
// makes it shed at most max_rate of its 50 a second (issue 17, item 1: it
// shed "50000.0 a second", every listed session at once).
func TestRebalancerSheddingIsBoundedByTheHostsOwnCount(t *testing.T) {
	t.Parallel()
	v := &view{servers: []policy.ServerLoad{{Name: "a", Conns: 1_000_000, Weight: 100}, {Name: "b", Weight: 100}}}
	c := &closer{}
	rb := policy.DefaultRebalance()
	rb.Enabled, rb.Sustain = true, time.Millisecond
	r := run(t, Options{
		Config:  func() policy.RebalanceConfig { return rb },
		Ready:   func() bool { return true },
		View:    func() BackendView { return v },
		Local:   func() (int, float64, bool) { return 50, 0.5, true },
		Closer:  func() shed.Closer { return c },
		Entered: func(time.Time) time.Time { return time.Time{} },
		Log:     zerolog.Nop(),
	})
	testutil.Until(t, waitLimit, "a rebalance shed", func() bool {
		st, ok := r.Status()
		return ok && st.Shed > 0
	})
	st, _ := r.Status()
	// max_rate 0.05 of 50 is 2.5 a second; one step may round up.
	if got := c.closed.Load(); got > 3 || st.Excess > 25 {
		t.Errorf("first shed closed %d with excess %v; want at most 3 (max_rate of the host's own 50) and excess at most 25", got, st.Excess)
	}
}
