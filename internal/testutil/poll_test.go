package testutil

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a TB that records a failure instead of ending the test.
type recorder struct{ failed string }

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	panic(r)
}

// run calls f with a recorder and returns the failure it recorded.
func run(f func(TB)) (failed string) {
	r := &recorder{}
	defer func() {
		if p := recover(); p != nil && p != r {
			panic(p)
		}
		failed = r.failed
	}()
	f(r)
	return ""
}

func TestPollReturnsOnceTheCheckPasses(t *testing.T) {
	t.Parallel()
	calls := 0
	failed := run(func(tb TB) {
		Poll(tb, time.Second, "third call", func() error {
			calls++
			if calls < 3 {
				return errors.New("not yet")
			}
			return nil
		})
	})
	if failed != "" || calls != 3 {
		t.Errorf("Poll failed %q after %d calls, want success on the third", failed, calls)
	}
}

func TestPollFailsWithTheLastError(t *testing.T) {
	t.Parallel()
	failed := run(func(tb TB) {
		Poll(tb, 20*time.Millisecond, "never", func() error { return errors.New("still broken") })
	})
	if !strings.Contains(failed, "never: not done within 20ms; last: still broken") {
		t.Errorf("Poll failure = %q, want what, the last error and the limit", failed)
	}
}

func TestPollStops(t *testing.T) {
	t.Parallel()
	calls := 0
	failed := run(func(tb TB) {
		Poll(tb, time.Minute, "exited", func() error { calls++; return Stop(errors.New("the process exited")) })
	})
	if calls != 1 || !strings.Contains(failed, "exited: not done within 1m0s; last: the process exited") {
		t.Errorf("Poll after Stop = %q after %d calls, want a failure after one", failed, calls)
	}
}

func TestWait(t *testing.T) {
	t.Parallel()
	calls := 0
	if _, err := Wait(time.Second, func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || calls != 3 {
		t.Errorf("Wait = %v after %d calls, want nil on the third", err, calls)
	}
	took, err := Wait(20*time.Millisecond, func() error { return errors.New("still broken") })
	if err == nil || err.Error() != "still broken" || took < 20*time.Millisecond {
		t.Errorf("Wait on a check that never passes = %v after %v, want its error after 20ms", err, took)
	}
}

func TestUntilFails(t *testing.T) {
	t.Parallel()
	failed := run(func(tb TB) { Until(tb, 10*time.Millisecond, "false", func() bool { return false }) })
	if !strings.Contains(failed, "false: not done within 10ms; last: condition false") {
		t.Errorf("Until failure = %q", failed)
	}
}

func TestRecv(t *testing.T) {
	t.Parallel()
	ch := make(chan int, 1)
	ch <- 7
	var got int
	if failed := run(func(tb TB) { got = Recv(tb, ch, time.Second, "seven") }); failed != "" || got != 7 {
		t.Errorf("Recv = %d (failed %q), want 7", got, failed)
	}
	failed := run(func(tb TB) { Recv(tb, make(chan int), 10*time.Millisecond, "nothing") })
	if failed != "nothing: nothing within 10ms" {
		t.Errorf("Recv failure = %q", failed)
	}
}

func TestFreeAddr(t *testing.T) {
	t.Parallel()
	addr := FreeAddr(t)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("FreeAddr gave %s, which cannot be bound: %v", addr, err)
	}
	ln.Close()
	if p := FreePort(t); p <= 0 || p > 65535 {
		t.Errorf("FreePort = %d", p)
	}
}

func TestShortTempDir(t *testing.T) {
	var dir string
	t.Run("inner test with a long name that t.TempDir would put in the path", func(t *testing.T) {
		dir = ShortTempDir(t)
		if len(filepath.Join(dir, "control.sock")) > 60 {
			t.Errorf("ShortTempDir = %s, too long for room to spare", dir)
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			t.Errorf("ShortTempDir = %s: %v", dir, err)
		}
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s is still there after its test: %v", dir, err)
	}
}

func TestWaited(t *testing.T) {
	t.Parallel()
	var wg sync.WaitGroup
	wg.Go(func() {})
	if failed := run(func(tb TB) { Waited(tb, &wg, time.Second, "done") }); failed != "" {
		t.Errorf("Waited on a finished group failed: %q", failed)
	}
	release := make(chan struct{})
	defer close(release)
	wg.Go(func() { <-release })
	if failed := run(func(tb TB) { Waited(tb, &wg, 10*time.Millisecond, "stuck") }); failed != "stuck: nothing within 10ms" {
		t.Errorf("Waited on a stuck group = %q", failed)
	}
}
