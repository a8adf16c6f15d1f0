package shed

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/hafeed/hafeed/internal/testutil"
	hook "github.com/hafeed/hafeed/shed"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitLimit bounds every wait in these tests; nothing should come close.
const waitLimit = 5 * time.Second

// poolCloser closes from a pool of connections and records when.
type poolCloser struct {
	mu     sync.Mutex
	left   int
	closes []time.Time
}

func (c *poolCloser) Close(_ context.Context, n int, _ string) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n = min(n, c.left)
	c.left -= n
	for range n {
		c.closes = append(c.closes, time.Now())
	}
	return n, nil
}

func (c *poolCloser) Via() string { return "test" }

// current hands the pool to a job as the closer in effect.
func (c *poolCloser) current() Closer { return c }

func (c *poolCloser) remaining(context.Context) int { return c.count() }

func (c *poolCloser) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.left
}

// TestShedJobRate checks the rate bound: 100 connections at 200/s take
// about half a second, never all at once, and the job stops at min.
func TestShedJobRate(t *testing.T) {
	t.Parallel()
	c := &poolCloser{left: 110}
	job := NewJob(200, 10, hook.ReasonDrain, time.Time{})
	start := time.Now()
	job.Run(context.Background(), JobDeps{Closer: c.current, Remaining: c.remaining, Keep: func() bool { return true }, Log: zerolog.Nop()})
	took := time.Since(start)
	st := job.Snapshot()
	if c.count() != 10 || st.Closed != 100 || st.Active {
		t.Fatalf("closed %d, %d left, active %v; want 100 closed, 10 left, ended", st.Closed, c.count(), st.Active)
	}
	if took < 300*time.Millisecond {
		t.Errorf("100 closes at 200/s took %v, want about 500ms", took)
	}
	// No burst: within any 100 ms at most 200/s x 0.1 s plus one tick's jitter.
	for i := range c.closes {
		j := i
		for j < len(c.closes) && c.closes[j].Sub(c.closes[i]) < 100*time.Millisecond {
			j++
		}
		if j-i > 45 {
			t.Fatalf("%d closes within 100ms at a rate of 200/s", j-i)
		}
	}
}

func TestShedJobStops(t *testing.T) {
	t.Parallel()
	c := &poolCloser{left: 1000}
	var keep atomic.Bool
	keep.Store(true)
	job := NewJob(50, 0, hook.ReasonDrain, time.Time{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		job.Run(context.Background(), JobDeps{Closer: c.current, Remaining: c.remaining, Keep: keep.Load, Log: zerolog.Nop()})
	}()
	// Lift the drain once the job is under way.
	testutil.Until(t, waitLimit, "the job closing a connection", func() bool { return c.count() < 1000 })
	keep.Store(false)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the job did not stop when the admin state changed")
	}
	if got := job.Snapshot().Ended; got != "admin state changed" {
		t.Errorf("ended %q, want admin state changed", got)
	}

	job = NewJob(50, 0, hook.ReasonDrain, time.Now().Add(100*time.Millisecond))
	job.Run(context.Background(), JobDeps{Closer: c.current, Remaining: c.remaining, Keep: func() bool { return true }, Log: zerolog.Nop()})
	if got := job.Snapshot().Ended; got == "" || got[:9] != "timed out" {
		t.Errorf("ended %q, want timed out", got)
	}
}

// TestHookCloserSpeaksShedProtocol runs the hook client against the shed
// package's real handler.
func TestHookCloserSpeaksShedProtocol(t *testing.T) {
	t.Parallel()
	var reg hook.Registry
	closed := make(chan struct{}, 10)
	for range 5 {
		reg.Add(hook.ConnFunc(func(context.Context) error {
			closed <- struct{}{}
			return nil
		}))
	}
	srv := httptest.NewServer(hook.Handler(&reg))
	defer srv.Close()
	h := NewHookCloser(srv.URL)
	n, err := h.Close(context.Background(), 3, "drain")
	if err != nil || n != 3 {
		t.Fatalf("close(3) = %d, %v; want 3", n, err)
	}
	if reg.Len() != 2 || len(closed) != 3 {
		t.Errorf("registry has %d left and %d were closed, want 2 and 3", reg.Len(), len(closed))
	}
	if _, err := h.Close(context.Background(), 1, "bogus"); err == nil {
		t.Errorf("an unknown reason was accepted")
	}
}

// hookLike is a closer that says it is the hook, over a pool.
type hookLike struct{ *poolCloser }

func (hookLike) Via() string { return "hook" }

// TestShedJobFollowsTheCloserInEffect swaps the closer under a running job,
// as a reload that changes shed.* does, then takes it away: the job closes
// through the new one, says so in its status, and stops without one.
func TestShedJobFollowsTheCloserInEffect(t *testing.T) {
	t.Parallel()
	pool := &poolCloser{left: 1000}
	var current atomic.Pointer[Closer]
	set := func(c Closer) { current.Store(&c) }
	set(pool)
	job := NewJob(200, 0, hook.ReasonDrain, time.Time{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		job.Run(context.Background(), JobDeps{Closer: func() Closer { return *current.Load() }, Remaining: pool.remaining, Keep: func() bool { return true }, Log: zerolog.Nop()})
	}()
	testutil.Until(t, waitLimit, "a close through the first closer", func() bool { return job.Snapshot().Via == "test" })
	set(hookLike{pool})
	testutil.Until(t, waitLimit, "a close through the new closer", func() bool { return job.Snapshot().Via == "hook" })
	set(nil)
	testutil.Recv(t, done, waitLimit, "the job to stop without a closer")
	if st := job.Snapshot(); st.Active || !strings.Contains(st.Ended, "no way to close connections") {
		t.Errorf("job status %+v, want ended for want of a closer", st)
	}
}

// hangingCloser never closes anything: it waits for its context, as a hung
// HAProxy or hook would.
type hangingCloser struct{ calls atomic.Int32 }

func (h *hangingCloser) Close(ctx context.Context, _ int, _ string) (int, error) {
	h.calls.Add(1)
	<-ctx.Done()
	return 0, ctx.Err()
}

func (h *hangingCloser) Via() string { return "test" }

// TestJobStopWaitsForTheCloseInFlight checks that stopping a job waits
// for a close already sent and counts what it closed (issue 17, item 5:
// stop-shed answered "closing 0" while a hook request was in flight, which
// then closed connections), and that a close that hangs ends at the close
// timeout, so that Stop is bounded.
func TestJobStopWaitsForTheCloseInFlight(t *testing.T) {
	t.Parallel()
	release := make(chan int)
	var calls atomic.Int32
	slow := closerFunc(func(ctx context.Context, n int) (int, error) {
		calls.Add(1)
		select {
		case k := <-release:
			return k, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	})
	job := NewJob(100, 0, hook.ReasonDrain, time.Time{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		job.Run(context.Background(), JobDeps{Closer: func() Closer { return slow }, Remaining: func(context.Context) int { return 100 }, Keep: func() bool { return true }, Log: zerolog.Nop()})
	}()
	testutil.Until(t, waitLimit, "a close under way", func() bool { return calls.Load() > 0 })
	stopped := make(chan JobStatus)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		job.Stop(ctx)
		stopped <- job.Snapshot()
	}()
	select {
	case st := <-stopped:
		t.Fatalf("Stop returned %+v while a close was in flight", st)
	case <-time.After(200 * time.Millisecond):
	}
	release <- 3
	st := testutil.Recv(t, stopped, waitLimit, "Stop to return once the close answered")
	testutil.Recv(t, done, waitLimit, "the job to end")
	if st.Active || st.Closed != 3 || !strings.Contains(st.Ended, "stopped on request") || calls.Load() != 1 {
		t.Errorf("job status %+v after %d closes, want 3 closed by the one in flight, stopped on request", st, calls.Load())
	}

	// A close that hangs ends at the close timeout.
	h := &hangingCloser{}
	job = NewJob(100, 0, hook.ReasonDrain, time.Time{})
	job.closeTimeout = 300 * time.Millisecond
	done = make(chan struct{})
	go func() {
		defer close(done)
		job.Run(context.Background(), JobDeps{Closer: func() Closer { return h }, Remaining: func(context.Context) int { return 100 }, Keep: func() bool { return true }, Log: zerolog.Nop()})
	}()
	testutil.Until(t, waitLimit, "a close under way", func() bool { return h.calls.Load() > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	job.Stop(ctx)
	testutil.Recv(t, done, waitLimit, "the job to end")
	if st := job.Snapshot(); st.Active || !strings.Contains(st.Ended, "stopped on request") || h.calls.Load() != 1 {
		t.Errorf("job status %+v after %d closes, want stopped on request after the one hung close", st, h.calls.Load())
	}
}

// closerFunc is a Closer from a function.
type closerFunc func(ctx context.Context, n int) (int, error)

func (f closerFunc) Close(ctx context.Context, n int, _ string) (int, error) { return f(ctx, n) }
func (closerFunc) Via() string                                               { return "test" }

// TestTallyCountsEveryReasonOnce checks that closes through a counted
// closer are counted by the reason given, once each.
func TestTallyCountsEveryReasonOnce(t *testing.T) {
	t.Parallel()
	var tally Tally
	c := tally.Counted(&poolCloser{left: 10})
	if _, err := c.Close(context.Background(), 3, hook.ReasonDrain); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Close(context.Background(), 4, hook.ReasonRebalance); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Close(context.Background(), 9, hook.ReasonRebalance); err != nil { // only 3 left
		t.Fatal(err)
	}
	want := map[string]uint64{hook.ReasonDrain: 3, hook.ReasonRebalance: 7}
	if diff := cmp.Diff(want, tally.Totals()); diff != "" {
		t.Errorf("totals (-want +got):\n%s", diff)
	}
	if tally.Counted(nil) != nil {
		t.Error("a counted nil closer is not nil: the agent would think it can shed")
	}
}

// TestRunnerReplacesAndStopsJobs runs the drain's jobs as the agent does:
// a new job replaces the running one, Stop names the job it stops, and
// what was closed is counted once, and Ended hears of each job that ends
// (the agent then counts at once, for hafeed drain --wait).
func TestRunnerReplacesAndStopsJobs(t *testing.T) {
	t.Parallel()
	var tally Tally
	pool := &poolCloser{left: 100000}
	ended := make(chan JobStatus, 2)
	r := NewRunner(RunnerOptions{
		Closer:    func() Closer { return tally.Counted(pool) },
		Keep:      func() bool { return true },
		Remaining: pool.remaining,
		Ended:     func(st JobStatus) { ended <- st },
		Log:       zerolog.Nop(),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	defer func() {
		cancel()
		testutil.Recv(t, done, waitLimit, "the runner to stop")
	}()
	if _, ok := r.Current(); ok {
		t.Fatal("a job before any was started")
	}
	start := func() JobStatus {
		t.Helper()
		sctx, scancel := context.WithTimeout(ctx, waitLimit)
		defer scancel()
		st, err := r.Start(sctx, 100, 0, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	first := start()
	if first.Job != 1 || !first.Active || first.Via != "test" {
		t.Fatalf("first job %+v, want job 1, active, via test", first)
	}
	second := start()
	if second.Job != 2 {
		t.Fatalf("second job is %d, want 2", second.Job)
	}
	if _, ok := r.Stop(ctx, first.Job); ok {
		t.Error("Stop stopped job 1, which the second replaced")
	}
	testutil.Until(t, waitLimit, "the second job closing", func() bool {
		st, _ := r.Current()
		return st.Closed > 0
	})
	sctx, scancel := context.WithTimeout(ctx, waitLimit)
	defer scancel()
	st, ok := r.Stop(sctx, second.Job)
	if !ok || st.Active || st.Ended == "" {
		t.Fatalf("Stop(2) = %+v, %v; want it ended", st, ok)
	}
	for _, want := range []uint64{first.Job, second.Job} {
		if got := testutil.Recv(t, ended, waitLimit, "Ended for a job"); got.Job != want || got.Ended == "" {
			t.Errorf("Ended heard %+v, want job %d ended", got, want)
		}
	}
	closed := 100000 - pool.count()
	if got := tally.Totals()[hook.ReasonDrain]; got != uint64(closed) {
		t.Errorf("tally says %d drained, the pool lost %d", got, closed)
	}
}
