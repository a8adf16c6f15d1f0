package shed

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// JobStatus is what the agent shows of a shedding job.
type JobStatus struct {
	// Job numbers the drain's shedding jobs, for stop-shed.
	Job       uint64
	Reason    string
	Rate      float64
	Via       string
	Started   time.Time
	Deadline  time.Time
	Min       int
	Closed    int
	Active    bool
	LastError string
	Ended     string
}

// Job closes connections at a bounded rate until few enough remain.
type Job struct {
	// Set once by NewJob.
	rate     float64
	min      int
	deadline time.Time
	reason   string
	// closeTimeout bounds one round of closes (closeTimeout; tests shorten it).
	closeTimeout time.Duration
	// cancel, closed by Stop, asks Run to end; done is closed once it has.
	cancel   chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	mu     sync.Mutex // guards status
	status JobStatus
}

// NewJob is a job that closes rate connections a second, for reason, until
// min remain or deadline (zero: none) passes.
func NewJob(rate float64, min int, reason string, deadline time.Time) *Job {
	return &Job{
		rate: rate, min: min, reason: reason, deadline: deadline, closeTimeout: closeTimeout,
		cancel: make(chan struct{}), done: make(chan struct{}),
		status: JobStatus{Reason: reason, Rate: rate, Min: min, Deadline: deadline, Started: time.Now(), Active: true},
	}
}

// Stop asks the job to end; it waits until it has, a close in flight
// included (at most the close timeout), or until ctx ends.
func (j *Job) Stop(ctx context.Context) {
	j.stopOnce.Do(func() { close(j.cancel) })
	select {
	case <-j.done:
	case <-ctx.Done():
	}
}

// Snapshot is the job's status now.
func (j *Job) Snapshot() JobStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.status
}

func (j *Job) update(f func(*JobStatus)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	f(&j.status)
}

// shedTick is the shortest pause between two closes: faster rates close a
// few connections per tick.
const shedTick = 50 * time.Millisecond

// closeTimeout bounds one round of closes, so that a hung HAProxy or hook
// cannot hold a job past its deadline or its stop.
const closeTimeout = 5 * time.Second

// JobDeps is what a job needs from the agent, read at each step so that a
// reload takes effect in a running job too.
type JobDeps struct {
	// Closer is the way to close in effect; nil when there is none.
	Closer func() Closer
	// Remaining counts the connections left.
	Remaining func(ctx context.Context) int
	// Keep says whether the admin state the job serves still holds.
	Keep func() bool
	Log  zerolog.Logger
}

// Run closes connections at the job's rate, spread evenly with ±50% jitter
// so that clients do not reconnect in a herd, until Remaining is at most
// the job's min, the deadline passes, Keep turns false, Stop is called or
// ctx ends.
func (j *Job) Run(ctx context.Context, deps JobDeps) {
	defer close(j.done)
	defer j.update(func(s *JobStatus) { s.Active = false })
	period := max(time.Duration(float64(time.Second)/j.rate), shedTick)
	var owed float64
	last := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			j.update(func(s *JobStatus) { s.Ended = "stopped" })
			return
		case <-j.cancel:
			j.update(func(s *JobStatus) { s.Ended = "stopped on request (hafeed drain --wait interrupted)" })
			return
		case <-timer.C:
		}
		select {
		case <-j.cancel: // both were ready: a stopped job starts no close
			j.update(func(s *JobStatus) { s.Ended = "stopped on request (hafeed drain --wait interrupted)" })
			return
		default:
		}
		now := time.Now()
		left := deps.Remaining(ctx)
		switch {
		case left <= j.min:
			j.update(func(s *JobStatus) { s.Ended = fmt.Sprintf("done: %d connections left", left) })
			return
		case !j.deadline.IsZero() && now.After(j.deadline):
			j.update(func(s *JobStatus) { s.Ended = fmt.Sprintf("timed out with %d connections left", left) })
			return
		case !deps.Keep():
			j.update(func(s *JobStatus) { s.Ended = "admin state changed" })
			return
		}
		owed = min(owed+j.rate*now.Sub(last).Seconds(), j.rate+1)
		last = now
		if n := min(int(owed), left-j.min); n > 0 {
			c := deps.Closer()
			if c == nil {
				j.update(func(s *JobStatus) { s.Ended = "stopped: a reload left no way to close connections" })
				return
			}
			closed, err := j.close(ctx, c, n)
			owed -= float64(n)
			j.update(func(s *JobStatus) {
				s.Via = c.Via()
				s.Closed += closed
				if err != nil {
					s.LastError = err.Error()
				}
			})
			if err != nil {
				deps.Log.Warn().Err(err).Msg("shedding connections")
			} else {
				deps.Log.Debug().Int("closed", closed).Str("reason", j.reason).Msg("shed connections")
			}
		}
		timer.Reset(time.Duration(float64(period) * (0.5 + rand.Float64())))
	}
}

// close closes n through c within the close timeout. A Stop does not cut
// it short: a request already sent (a hook's POST, a shutdown session)
// closes connections whether or not its answer is read, so Stop waits for
// the answer and counts it, rather than report fewer than were closed.
func (j *Job) close(ctx context.Context, c Closer, n int) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, j.closeTimeout)
	defer cancel()
	return c.Close(ctx, n, j.reason)
}
