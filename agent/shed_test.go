package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/hafeed/hafeed/internal/testutil"
	"github.com/hafeed/hafeed/shed"
)

// poolCloser closes from a pool of connections and records when.
type poolCloser struct {
	mu     sync.Mutex
	left   int
	closes []time.Time
}

func (c *poolCloser) close(_ context.Context, n int, _ string) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n = min(n, c.left)
	c.left -= n
	for range n {
		c.closes = append(c.closes, time.Now())
	}
	return n, nil
}

func (c *poolCloser) via() string { return "test" }

// current hands the pool to a job as the closer in effect.
func (c *poolCloser) current() closer { return c }

func (c *poolCloser) remaining() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.left
}

// TestShedJobRate checks the rate bound: 100 connections at 200/s take
// about half a second, never all at once, and the job stops at min.
func TestShedJobRate(t *testing.T) {
	t.Parallel()
	c := &poolCloser{left: 110}
	job := newShedJob(200, 10, "drain")
	job.status.Active = true
	start := time.Now()
	job.run(context.Background(), c.current, c.remaining, func() bool { return true }, zerolog.Nop())
	took := time.Since(start)
	st := job.snapshot()
	if c.remaining() != 10 || st.Closed != 100 || st.Active {
		t.Fatalf("closed %d, %d left, active %v; want 100 closed, 10 left, ended", st.Closed, c.remaining(), st.Active)
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
	job := newShedJob(50, 0, "drain")
	done := make(chan struct{})
	go func() {
		defer close(done)
		job.run(context.Background(), c.current, c.remaining, keep.Load, zerolog.Nop())
	}()
	// Lift the drain once the job is under way.
	testutil.Until(t, waitLimit, "the job closing a connection", func() bool { return c.remaining() < 1000 })
	keep.Store(false)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the job did not stop when the admin state changed")
	}
	if got := job.snapshot().Ended; got != "admin state changed" {
		t.Errorf("ended %q, want admin state changed", got)
	}

	job = newShedJob(50, 0, "drain")
	job.deadline = time.Now().Add(100 * time.Millisecond)
	job.run(context.Background(), c.current, c.remaining, func() bool { return true }, zerolog.Nop())
	if got := job.snapshot().Ended; got == "" || got[:9] != "timed out" {
		t.Errorf("ended %q, want timed out", got)
	}
}

// TestHookCloserSpeaksShedProtocol runs the hook client against the shed
// package's real handler.
func TestHookCloserSpeaksShedProtocol(t *testing.T) {
	t.Parallel()
	var reg shed.Registry
	closed := make(chan struct{}, 10)
	for range 5 {
		reg.Add(shed.ConnFunc(func(context.Context) error {
			closed <- struct{}{}
			return nil
		}))
	}
	srv := httptest.NewServer(shed.Handler(&reg))
	defer srv.Close()
	h := hookCloser{url: srv.URL, client: &http.Client{Timeout: 5 * time.Second}}
	n, err := h.close(context.Background(), 3, "drain")
	if err != nil || n != 3 {
		t.Fatalf("close(3) = %d, %v; want 3", n, err)
	}
	if reg.Len() != 2 || len(closed) != 3 {
		t.Errorf("registry has %d left and %d were closed, want 2 and 3", reg.Len(), len(closed))
	}
	if _, err := (hookCloser{url: srv.URL, client: http.DefaultClient}).close(context.Background(), 1, "bogus"); err == nil {
		t.Errorf("an unknown reason was accepted")
	}
}

// hookLike is a closer that says it is the hook, over a pool.
type hookLike struct{ *poolCloser }

func (hookLike) via() string { return "hook" }

// TestShedJobFollowsTheCloserInEffect swaps the closer under a running job,
// as a reload that changes shed.* does, then takes it away: the job closes
// through the new one, says so in its status, and stops without one.
func TestShedJobFollowsTheCloserInEffect(t *testing.T) {
	t.Parallel()
	pool := &poolCloser{left: 1000}
	var current atomic.Pointer[closer]
	set := func(c closer) { current.Store(&c) }
	set(pool)
	job := newShedJob(200, 0, "drain")
	job.status.Active = true
	done := make(chan struct{})
	go func() {
		defer close(done)
		job.run(context.Background(), func() closer { return *current.Load() }, pool.remaining, func() bool { return true }, zerolog.Nop())
	}()
	testutil.Until(t, waitLimit, "a close through the first closer", func() bool { return job.snapshot().Via == "test" })
	set(hookLike{pool})
	testutil.Until(t, waitLimit, "a close through the new closer", func() bool { return job.snapshot().Via == "hook" })
	set(nil)
	testutil.Recv(t, done, waitLimit, "the job to stop without a closer")
	if st := job.snapshot(); st.Active || !strings.Contains(st.Ended, "no way to close connections") {
		t.Errorf("job status %+v, want ended for want of a closer", st)
	}
}
