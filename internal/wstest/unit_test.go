package wstest

import (
	"testing"
	"time"
)

func TestBackoffDelayStaysUnderItsCeiling(t *testing.T) {
	t.Parallel()
	const base, ceiling = 50 * time.Millisecond, 2 * time.Second
	tests := []struct {
		failures int
		limit    time.Duration
	}{
		{failures: 0, limit: 50 * time.Millisecond},
		{failures: 1, limit: 100 * time.Millisecond},
		{failures: 3, limit: 400 * time.Millisecond},
		{failures: 5, limit: 1600 * time.Millisecond},
		{failures: 6, limit: 2 * time.Second},
		{failures: 1000, limit: 2 * time.Second},
	}
	for _, tt := range tests {
		var longest time.Duration
		for range 2000 {
			d := backoffDelay(tt.failures, base, ceiling)
			if d < 0 || d >= tt.limit {
				t.Fatalf("backoffDelay(%d) = %v, want in [0, %v)", tt.failures, d, tt.limit)
			}
			longest = max(longest, d)
		}
		// Full jitter spreads over the whole range, not just its bottom.
		if longest < tt.limit/2 {
			t.Errorf("backoffDelay(%d): longest of 2000 draws %v, want near %v", tt.failures, longest, tt.limit)
		}
	}
}

func TestClientsDisconnectedOver(t *testing.T) {
	t.Parallel()
	s := Stats{disconnected: []time.Duration{0, time.Second, time.Second, 3 * time.Second}}
	tests := []struct {
		over time.Duration
		want int
	}{
		{over: -1, want: 4},
		{over: 0, want: 3},
		{over: time.Second - 1, want: 3},
		{over: time.Second, want: 1},
		{over: 3 * time.Second, want: 0},
	}
	for _, tt := range tests {
		if got := s.ClientsDisconnectedOver(tt.over); got != tt.want {
			t.Errorf("ClientsDisconnectedOver(%v) = %d, want %d", tt.over, got, tt.want)
		}
	}
	if got := (Stats{}).ClientsDisconnectedOver(0); got != 0 {
		t.Errorf("empty ClientsDisconnectedOver(0) = %d, want 0", got)
	}
}

func TestMessageRoundTrip(t *testing.T) {
	t.Parallel()
	for _, size := range []int{headerSize, 32, 1000} {
		buf := make([]byte, size)
		encodeMessage(buf, 7, 1<<40+3)
		id, seq, ok := decodeMessage(buf, size)
		if !ok || id != 7 || seq != 1<<40+3 {
			t.Errorf("size %d: decode = %d, %d, %v; want 7, %d, true", size, id, seq, ok, uint64(1<<40+3))
		}
		if _, _, ok := decodeMessage(buf[:size-1], size); ok {
			t.Errorf("size %d: a truncated message decoded", size)
		}
		if size > headerSize {
			buf[size-1]++
			if _, _, ok := decodeMessage(buf, size); ok {
				t.Errorf("size %d: a corrupted message decoded", size)
			}
		}
	}
}
