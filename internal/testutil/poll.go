package testutil

import (
	"errors"
	"sync"
	"time"
)

// TB is the part of testing.TB the waits use.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// tick is the pause between two checks.
const tick = 5 * time.Millisecond

// errNotYet is the error Until reports for a condition that never held.
var errNotYet = errors.New("condition false")

// Poll calls check until it returns nil and returns how long that took.
// If limit passes first, or check returns an error made by Stop, it fails
// the test with what and check's last error. Call it from the test's
// goroutine: it may call t.Fatalf.
func Poll(t TB, limit time.Duration, what string, check func() error) time.Duration {
	t.Helper()
	took, err := Wait(limit, check)
	if err != nil {
		t.Fatalf("%s: not done within %v; last: %v", what, limit, err)
	}
	return took
}

// Wait calls check until it returns nil, limit passes or check returns an
// error made by Stop, and returns how long it waited and check's last
// error (nil once check passed). It is Poll for a caller that reports the
// failure its own way, or goes on after it.
func Wait(limit time.Duration, check func() error) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(limit)
	for {
		err := check()
		var stop *stopError
		switch {
		case err == nil:
			return time.Since(start), nil
		case errors.As(err, &stop):
			return time.Since(start), stop.err
		case time.Now().After(deadline):
			return time.Since(start), err
		}
		time.Sleep(tick)
	}
}

// Stop makes err an error that ends a Wait or a Poll at once, for a check
// that sees the wait is hopeless, such as a process that exited.
func Stop(err error) error { return &stopError{err} }

type stopError struct{ err error }

func (e *stopError) Error() string { return e.err.Error() }

// Until is Poll for a condition with nothing to report but false.
func Until(t TB, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return Poll(t, limit, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

// Recv receives one value from ch, failing the test if none comes within
// limit.
func Recv[T any](t TB, ch <-chan T, limit time.Duration, what string) T {
	t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("%s: nothing within %v", what, limit)
		panic("unreachable: Fatalf returns only to stop the goroutine")
	}
}

// Waited waits for wg, failing the test if it is not done within limit. A
// goroutine that never ends is left behind, blocked on wg.
func Waited(t TB, wg *sync.WaitGroup, limit time.Duration, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	Recv(t, done, limit, what)
}
