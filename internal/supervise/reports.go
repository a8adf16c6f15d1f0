package supervise

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"
)

// Reports holds the latest of the JSON lines a child writes on its stdout,
// one report a line, decoded into T.
type Reports[T any] struct {
	mu    sync.Mutex
	last  T
	have  bool
	first chan struct{}
}

// StartReporting starts cmd under s with its stdout read as reports; lines
// that are not a T are skipped.
func StartReporting[T any](s *Supervisor, name string, cmd *exec.Cmd) (*Child, *Reports[T], error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	cmd.Stdout = pw
	c, err := s.Start(name, cmd)
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, nil, err
	}
	r := &Reports[T]{first: make(chan struct{})}
	go func() {
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var v T
			if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
				continue
			}
			r.mu.Lock()
			r.last = v
			if !r.have {
				r.have = true
				close(r.first)
			}
			r.mu.Unlock()
		}
	}()
	return c, r, nil
}

// Latest is the last report, the zero T before the first.
func (r *Reports[T]) Latest() T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// AwaitFirst waits for the first report, and fails if c exits, limit
// passes or ctx ends before it.
func (r *Reports[T]) AwaitFirst(ctx context.Context, c *Child, limit time.Duration) (T, error) {
	var zero T
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-r.first:
		return r.Latest(), nil
	case <-c.Done():
		return zero, fmt.Errorf("%s exited before reporting: %v\n%s", c.Name, c.Err(), c.Tail())
	case <-timer.C:
		return zero, fmt.Errorf("%s did not report within %v\n%s", c.Name, limit, c.Tail())
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}
