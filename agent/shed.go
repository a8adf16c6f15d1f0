package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// closer closes up to n of this host's connections so that their clients
// reconnect elsewhere, and says how many it closed.
type closer interface {
	close(ctx context.Context, n int, reason string) (int, error)
}

// hookCloser asks the application to close sockets: a POST of
// {"count": N, "reason": "..."} answered with {"closed": K} (package shed).
type hookCloser struct {
	url    string
	client *http.Client
}

func (h hookCloser) close(ctx context.Context, n int, reason string) (int, error) {
	body, _ := json.Marshal(struct {
		Count  int    `json:"count"`
		Reason string `json:"reason"`
	}{n, reason})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("shed hook %s: %w", h.url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64*1024))
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("shed hook %s: %s: %s", h.url, resp.Status, bytes.TrimSpace(data))
	}
	var out struct {
		Closed int `json:"closed"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return 0, fmt.Errorf("shed hook %s: malformed reply %q: %v", h.url, data, err)
	}
	return out.Closed, nil
}

// ShedStatus is what status shows of a shedding job.
type ShedStatus struct {
	Reason    string    `json:"reason"`
	Rate      float64   `json:"rate"`
	Via       string    `json:"via"`
	Started   time.Time `json:"started"`
	Deadline  time.Time `json:"deadline"`
	Min       int       `json:"min"`
	Closed    int       `json:"closed"`
	Active    bool      `json:"active"`
	LastError string    `json:"last_error,omitempty"`
	Ended     string    `json:"ended,omitempty"`
}

// shedJob closes connections at a bounded rate until few enough remain.
type shedJob struct {
	rate     float64
	min      int
	deadline time.Time
	reason   string

	mu     sync.Mutex
	status ShedStatus
}

func (j *shedJob) snapshot() ShedStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.status
}

func (j *shedJob) update(f func(*ShedStatus)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	f(&j.status)
}

// shedTick is the shortest pause between two closes: faster rates close
// a few connections per tick.
const shedTick = 50 * time.Millisecond

// run closes connections at j.rate, spread evenly with ±50% jitter so
// that clients do not reconnect in a herd, until remaining() is at most
// j.min, the deadline passes, keep() turns false or ctx ends.
func (j *shedJob) run(ctx context.Context, c closer, remaining func() int, keep func() bool, log zerolog.Logger) {
	defer j.update(func(s *ShedStatus) { s.Active = false })
	period := max(time.Duration(float64(time.Second)/j.rate), shedTick)
	var owed float64
	last := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			j.update(func(s *ShedStatus) { s.Ended = "stopped" })
			return
		case <-timer.C:
		}
		now := time.Now()
		left := remaining()
		switch {
		case left <= j.min:
			j.update(func(s *ShedStatus) { s.Ended = fmt.Sprintf("done: %d connections left", left) })
			return
		case !j.deadline.IsZero() && now.After(j.deadline):
			j.update(func(s *ShedStatus) { s.Ended = fmt.Sprintf("timed out with %d connections left", left) })
			return
		case !keep():
			j.update(func(s *ShedStatus) { s.Ended = "admin state changed" })
			return
		}
		owed = min(owed+j.rate*now.Sub(last).Seconds(), j.rate+1)
		last = now
		if n := min(int(owed), left-j.min); n > 0 {
			closed, err := c.close(ctx, n, j.reason)
			owed -= float64(n)
			j.update(func(s *ShedStatus) {
				s.Closed += closed
				if err != nil {
					s.LastError = err.Error()
				}
			})
			if err != nil {
				log.Warn().Err(err).Msg("shedding connections")
			} else {
				log.Debug().Int("closed", closed).Str("reason", j.reason).Msg("shed connections")
			}
		}
		timer.Reset(time.Duration(float64(period) * (0.5 + rand.Float64())))
	}
}
