package shed

import (
	"context"
	"maps"
	"sync"

	hook "github.com/hafeed/hafeed/shed"
)

// Closer closes up to n of this host's connections so that their clients
// reconnect elsewhere, and says how many it closed. reason is
// hook.ReasonDrain or hook.ReasonRebalance.
type Closer interface {
	Close(ctx context.Context, n int, reason string) (int, error)
	// Via names the way, as shed.via does: runtime or hook.
	Via() string
}

// Tally counts the connections closed to move them, by reason.
type Tally struct {
	mu sync.Mutex
	n  map[string]uint64
}

// Totals are the counts by reason; drain and rebalance are always there.
func (t *Tally) Totals() map[string]uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]uint64{hook.ReasonDrain: 0, hook.ReasonRebalance: 0}
	maps.Copy(out, t.n)
	return out
}

func (t *Tally) add(reason string, n int) {
	if n <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == nil {
		t.n = map[string]uint64{}
	}
	t.n[reason] += uint64(n)
}

// Counted is c with what it closes added to t: every close that moves a
// connection, a drain's or a rebalance's, is counted the one way.
func (t *Tally) Counted(c Closer) Closer {
	if c == nil {
		return nil
	}
	return countedCloser{Closer: c, tally: t}
}

type countedCloser struct {
	Closer
	tally *Tally
}

func (c countedCloser) Close(ctx context.Context, n int, reason string) (int, error) {
	closed, err := c.Closer.Close(ctx, n, reason)
	c.tally.add(reason, closed)
	return closed, err
}
