package shed_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hafeed/hafeed/internal/testutil"
	"github.com/hafeed/hafeed/shed"
)

// recorder hands out fake connections and records which were shed.
type recorder struct {
	mu   sync.Mutex
	shed []int
}

// conn returns a fake connection named id whose Shed returns err.
func (rec *recorder) conn(id int, err error) shed.Conn {
	return shed.ConnFunc(func(context.Context) error {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		rec.shed = append(rec.shed, id)
		return err
	})
}

// sorted returns the ids shed so far in ascending order.
func (rec *recorder) sorted() []int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Sorted(slices.Values(rec.shed))
}

func TestRegistryShedsOldestFirst(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		add        int
		remove     []int
		shed       int
		wantShed   []int
		wantClosed int
		wantLen    int
	}{
		{name: "empty", add: 0, shed: 3, wantShed: nil, wantClosed: 0, wantLen: 0},
		{name: "zero asked", add: 3, shed: 0, wantShed: nil, wantClosed: 0, wantLen: 3},
		{name: "negative asked", add: 3, shed: -1, wantShed: nil, wantClosed: 0, wantLen: 3},
		{name: "oldest two", add: 5, shed: 2, wantShed: []int{0, 1}, wantClosed: 2, wantLen: 3},
		{name: "skips removed", add: 5, remove: []int{0, 2}, shed: 2, wantShed: []int{1, 3}, wantClosed: 2, wantLen: 1},
		{name: "removed youngest", add: 3, remove: []int{2}, shed: 5, wantShed: []int{0, 1}, wantClosed: 2, wantLen: 0},
		{name: "more than live", add: 3, shed: 10, wantShed: []int{0, 1, 2}, wantClosed: 3, wantLen: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var reg shed.Registry
			var rec recorder
			removes := make([]func(), tt.add)
			for i := range tt.add {
				removes[i] = reg.Add(rec.conn(i, nil))
			}
			for _, i := range tt.remove {
				removes[i]()
			}
			closed := reg.Shed(t.Context(), tt.shed)
			if closed != tt.wantClosed {
				t.Errorf("Shed(%d) = %d, want %d", tt.shed, closed, tt.wantClosed)
			}
			if diff := cmp.Diff(tt.wantShed, rec.sorted()); diff != "" {
				t.Errorf("shed connections (-want +got):\n%s", diff)
			}
			if got := reg.Len(); got != tt.wantLen {
				t.Errorf("Len() = %d, want %d", got, tt.wantLen)
			}
		})
	}
}

func TestRegistryRemoveTwiceAndAfterShed(t *testing.T) {
	t.Parallel()
	var reg shed.Registry
	var rec recorder
	first := reg.Add(rec.conn(0, nil))
	second := reg.Add(rec.conn(1, nil))
	first()
	first()
	if got := reg.Len(); got != 1 {
		t.Fatalf("Len() after removing one of two twice = %d, want 1", got)
	}
	if closed := reg.Shed(t.Context(), 1); closed != 1 {
		t.Fatalf("Shed(1) = %d, want 1", closed)
	}
	second()
	third := reg.Add(rec.conn(2, nil))
	if got := reg.Len(); got != 1 {
		t.Fatalf("Len() after removing a shed connection and adding one = %d, want 1", got)
	}
	third()
	if got := reg.Len(); got != 0 {
		t.Fatalf("Len() = %d, want 0", got)
	}
}

func TestRegistryShedCountsOnlyToldConnections(t *testing.T) {
	t.Parallel()
	var reg shed.Registry
	var rec recorder
	reg.Add(rec.conn(0, nil))
	reg.Add(rec.conn(1, errors.New("connection already closed")))
	reg.Add(rec.conn(2, context.DeadlineExceeded))
	if closed := reg.Shed(t.Context(), 3); closed != 2 {
		t.Errorf("Shed(3) = %d, want 2: the failed connection must not count", closed)
	}
	if got := reg.Len(); got != 0 {
		t.Errorf("Len() = %d, want 0: a failed connection is gone too", got)
	}
}

func TestRegistryShedReturnsWhenContextEnds(t *testing.T) {
	t.Parallel()
	var reg shed.Registry
	release := make(chan struct{})
	stuck := shed.ConnFunc(func(context.Context) error {
		<-release
		return nil
	})
	failed := shed.ConnFunc(func(context.Context) error { return errors.New("gone") })
	reg.Add(failed)
	reg.Add(stuck)
	reg.Add(stuck)

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	closed := reg.Shed(ctx, 3)
	close(release)
	if closed != 2 {
		t.Errorf("Shed(3) with two connections still closing = %d, want 2", closed)
	}
}

func TestRegistryShedWithEndedContextClosesNothing(t *testing.T) {
	t.Parallel()
	var reg shed.Registry
	var rec recorder
	reg.Add(rec.conn(0, nil))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if closed := reg.Shed(ctx, 1); closed != 0 {
		t.Errorf("Shed(1) = %d, want 0", closed)
	}
	if got := reg.Len(); got != 1 {
		t.Errorf("Len() = %d, want 1", got)
	}
}

func TestRegistryConcurrentUse(t *testing.T) {
	t.Parallel()
	const (
		workers = 8
		perWork = 500
	)
	var reg shed.Registry
	var rec recorder
	var removed, shedTotal sync.Map
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWork {
				id := w*perWork + i
				remove := reg.Add(rec.conn(id, nil))
				if i%3 == 0 {
					remove()
					remove()
					removed.Store(id, true)
				}
				if i%10 == 0 {
					shedTotal.Store(id, reg.Shed(t.Context(), 2))
				}
				_ = reg.Len()
			}
		})
	}
	testutil.Waited(t, &wg, 30*time.Second, "the workers to finish: a deadlock?")
	rest := reg.Shed(t.Context(), workers*perWork)

	closed := rest
	shedTotal.Range(func(_, v any) bool {
		closed += v.(int)
		return true
	})
	shedIDs := rec.sorted()
	if closed != len(shedIDs) {
		t.Errorf("Shed reported %d closed, connections saw %d", closed, len(shedIDs))
	}
	// A connection removed right after Add may have been shed in between by
	// another worker; every connection not removed must have been shed.
	for id := range workers * perWork {
		if _, wasRemoved := removed.Load(id); wasRemoved {
			continue
		}
		if _, found := slices.BinarySearch(shedIDs, id); !found {
			t.Errorf("connection %d was neither removed nor shed", id)
		}
	}
	if got := slices.Compact(slices.Clone(shedIDs)); len(got) != len(shedIDs) {
		t.Errorf("some connection was shed twice")
	}
	if got := reg.Len(); got != 0 {
		t.Errorf("Len() = %d, want 0", got)
	}
}
