package shed

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/rs/zerolog"

	hook "github.com/hafeed/hafeed/shed"
)

// RunnerOptions wires a Runner to the agent.
type RunnerOptions struct {
	// Closer is the way to close in effect; nil when there is none.
	Closer func() Closer
	// Keep says whether the host is still drained.
	Keep func() bool
	// Remaining counts the connections left, the count a job stops by,
	// over the sources in effect at each count (a SourcesCounter's Count):
	// a reload that changes sources.ports mid-drain moves it too.
	Remaining func(ctx context.Context) int
	// Ended, when set, is called with each job's last status once it has
	// ended.
	Ended func(JobStatus)
	Log   zerolog.Logger
}

// Runner runs the drain's shedding jobs, one at a time: a new job replaces
// the one running.
type Runner struct {
	// Set once by NewRunner.
	opts RunnerOptions
	log  zerolog.Logger
	jobs chan *Job

	mu      sync.Mutex // guards the fields below
	seq     uint64     // numbers the jobs
	current *Job
}

// NewRunner builds a runner; Run runs its jobs.
func NewRunner(opts RunnerOptions) *Runner {
	return &Runner{opts: opts, log: opts.Log.With().Str("component", "shed").Logger(), jobs: make(chan *Job)}
}

// ErrNotStarted says that Run did not take the job before the request's
// deadline.
var ErrNotStarted = errors.New("the shedding job did not start before the request's deadline: the host is drained, but nothing sheds its connections; run the drain with --shed-rate again")

// Start hands a drain's job to Run, replacing any job still running, and
// returns its status as it starts. timeout 0 runs it without a deadline.
func (r *Runner) Start(ctx context.Context, rate float64, min int, timeout time.Duration) (JobStatus, error) {
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	job := NewJob(rate, min, hook.ReasonDrain, deadline)
	r.mu.Lock()
	r.seq++
	job.status.Job = r.seq
	r.mu.Unlock()
	if c := r.opts.Closer(); c != nil {
		job.status.Via = c.Via()
	}
	select {
	case r.jobs <- job:
	case <-ctx.Done():
		return JobStatus{}, ErrNotStarted
	}
	r.mu.Lock()
	r.current = job
	r.mu.Unlock()
	return job.Snapshot(), nil
}

// Stop stops the job numbered id (0: any), leaving the admin state as it
// is, and returns its status; false if no such job runs.
func (r *Runner) Stop(ctx context.Context, id uint64) (JobStatus, bool) {
	r.mu.Lock()
	job := r.current
	r.mu.Unlock()
	if job == nil || (id != 0 && job.Snapshot().Job != id) {
		return JobStatus{}, false
	}
	job.Stop(ctx)
	return job.Snapshot(), true
}

// Current is the last job's status; false before the first.
func (r *Runner) Current() (JobStatus, bool) {
	r.mu.Lock()
	job := r.current
	r.mu.Unlock()
	if job == nil {
		return JobStatus{}, false
	}
	return job.Snapshot(), true
}

// Run runs the jobs Start hands it until ctx ends, and stops the last one.
func (r *Runner) Run(ctx context.Context) error {
	var cancel context.CancelFunc = func() {}
	done := make(chan struct{})
	close(done)
	defer func() {
		cancel()
		<-done
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case job := <-r.jobs:
			cancel()
			<-done
			jobCtx, jobCancel := context.WithCancel(ctx)
			cancel = jobCancel
			done = make(chan struct{})
			go func() {
				defer close(done)
				r.log.Info().Float64("rate", job.rate).Int("min", job.min).Time("deadline", job.deadline).Str("reason", job.reason).Msg("shedding connections to empty this host")
				job.Run(jobCtx, JobDeps{Closer: r.opts.Closer, Remaining: r.opts.Remaining, Keep: r.opts.Keep, Log: r.log})
				st := job.Snapshot()
				r.log.Info().Int("closed", st.Closed).Str("ended", st.Ended).Msg("shedding job ended")
				if r.opts.Ended != nil {
					r.opts.Ended(st)
				}
			}()
		}
	}
}
