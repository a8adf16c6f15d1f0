package shed

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/hafeed/hafeed/metrics"
)

// countBudget is the share of a core a job's counts may take: fresher than
// the sampler's last sample, and bounded while the job runs.
const countBudget = 0.1

// countTimeout bounds one count: a count that does not finish by then is
// unknown.
const countTimeout = 5 * time.Second

// Unknown is what a count that failed reports: more than any host holds,
// so that a job keeps going until its deadline.
const Unknown = 1 << 30

// ConnCounter counts this host's established connections for a job.
type ConnCounter struct {
	conns *metrics.Conns
	pacer metrics.CountPacer
	last  int
}

// NewConnCounter counts connections on ports (all listening ports when
// empty), leaving out the agent's own exclude ports.
func NewConnCounter(ports []uint16, procRoot string, exclude ...uint16) *ConnCounter {
	return &ConnCounter{
		conns: &metrics.Conns{Ports: ports, ProcRoot: procRoot, Exclude: exclude},
		pacer: metrics.CountPacer{Budget: countBudget},
	}
}

// Count is the number of established connections, counted again when the
// budget allows and otherwise the last count; Unknown when it fails.
func (c *ConnCounter) Count(ctx context.Context) int {
	start := time.Now()
	if !c.pacer.Due(start) {
		return c.last
	}
	ctx, cancel := context.WithTimeout(ctx, countTimeout)
	defer cancel()
	n, err := c.conns.Count(ctx)
	if err != nil {
		return Unknown
	}
	c.last = n.Established
	c.pacer.Counted(start, time.Since(start))
	return c.last
}

// Sources are what a count covers: the ports (all listening ports when
// empty) less Exclude, read through ProcRoot when netlink is unavailable.
type Sources struct {
	Ports    []uint16
	ProcRoot string
	Exclude  []uint16
}

func (s Sources) equal(o Sources) bool {
	return slices.Equal(s.Ports, o.Ports) && s.ProcRoot == o.ProcRoot && slices.Equal(s.Exclude, o.Exclude)
}

// SourcesCounter counts with the sources in effect at each count, so that
// a job running across a reload that changes sources.ports counts the new
// ports, as the sampler and the CLI's wait do. It keeps one ConnCounter
// (and its budget) while the sources stay the same.
type SourcesCounter struct {
	// Set once by NewSourcesCounter.
	sources func() Sources

	mu      sync.Mutex // guards the fields below, held across a count
	current Sources
	counter *ConnCounter
}

// NewSourcesCounter counts over the sources in effect at each count.
func NewSourcesCounter(sources func() Sources) *SourcesCounter {
	return &SourcesCounter{sources: sources}
}

// Count is ConnCounter.Count over the sources in effect.
func (s *SourcesCounter) Count(ctx context.Context) int {
	src := s.sources()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counter == nil || !src.equal(s.current) {
		s.current = Sources{Ports: slices.Clone(src.Ports), ProcRoot: src.ProcRoot, Exclude: slices.Clone(src.Exclude)}
		s.counter = NewConnCounter(s.current.Ports, s.current.ProcRoot, s.current.Exclude...)
	}
	return s.counter.Count(ctx)
}
