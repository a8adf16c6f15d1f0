package shed

import (
	"context"
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
