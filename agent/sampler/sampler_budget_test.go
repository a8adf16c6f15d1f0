package sampler

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hafeed/hafeed/metrics"
)

// TestSamplerCountBudgetBeyondStaleAfter checks that a count the budget
// spaces out for longer than stale_after stands until the next one instead
// of reading as 0 (issue 11, item 5: 100,000 connections took 200 ms to
// count, so the next count was due 20 s later, and from 10 s on the agent
// reported 0 connections).
func TestSamplerCountBudgetBeyondStaleAfter(t *testing.T) {
	t.Parallel()
	s, p, now := budgetSampler(t)
	// As if that count had found 100,000 connections in 200 ms.
	s.lastCount = metrics.ConnCount{Established: 100000, Ports: []uint16{1}}
	s.counts.Counted(s.counts.At(), 200*time.Millisecond)
	for i := 1; i < 20; i++ {
		*now = t0.Add(time.Duration(i) * time.Second)
		got := s.Sample(context.Background(), p, 1, 0)
		if got.Connections != 100000 {
			t.Fatalf("%v after a count due every 20 s: connections %d, want 100000 (stale_after %v)", now.Sub(t0), got.Connections, p.StaleAfter)
		}
		if strings.Contains(got.Reason, "no fresh load signal") {
			t.Fatalf("%v after the count: %q, want the count to stand", now.Sub(t0), got.Reason)
		}
	}
	*now = t0.Add(20 * time.Second)
	s.Sample(context.Background(), p, 1, 0)
	if !s.counts.At().Equal(*now) {
		t.Errorf("no count 20 s after a 200 ms one at a 1%% budget")
	}
}
