package supervise

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hafeed/hafeed/internal/testutil"
)

// gone reports whether pid has exited: no such process, or a zombie
// waiting for whoever adopted it.
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// pid (comm) state ...: the state follows the last ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] == "Z"
}

func TestStopEndsTheGroupAndLogs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := New(dir)
	// The shell prints its background child's pid and waits for it: Stop
	// must end both.
	cmd := exec.Command("sh", "-c", `sleep 60 & echo "grandchild $!"; echo to-stderr >&2; wait`)
	c, err := s.Start("family", cmd)
	if err != nil {
		t.Fatal(err)
	}
	var grandchild int
	testutil.Until(t, 5*time.Second, "the shell logs its child's pid", func() bool {
		for line := range strings.Lines(c.Tail()) {
			if n, ok := strings.CutPrefix(strings.TrimSpace(line), "grandchild "); ok {
				grandchild, _ = strconv.Atoi(n)
			}
		}
		return grandchild > 0 && strings.Contains(c.Tail(), "to-stderr")
	})
	if got, want := c.LogPath(), filepath.Join(dir, "family.log"); got != want {
		t.Errorf("LogPath() = %q, want %q", got, want)
	}
	if n := s.Running(); n != 1 {
		t.Errorf("Running() = %d before Stop, want 1", n)
	}
	if err := s.Stop(c); err != nil {
		t.Fatal(err)
	}
	if !c.Exited() {
		t.Error("Exited() = false after Stop")
	}
	if n := s.Running(); n != 0 {
		t.Errorf("Running() = %d after Stop, want 0", n)
	}
	testutil.Until(t, 5*time.Second, "the grandchild exits", func() bool { return gone(grandchild) })
	// A second Stop finds it stopped.
	if err := s.Stop(c); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestChildSeesItsStdinClose(t *testing.T) {
	t.Parallel()
	s := New(t.TempDir())
	// The shell ignores SIGTERM; cat ends on EOF and then the shell exits
	// by itself, before any SIGKILL.
	s.grace = time.Minute
	c, err := s.Start("reader", exec.Command("sh", "-c", `trap '' TERM; echo ready; cat >/dev/null; exit 7`))
	if err != nil {
		t.Fatal(err)
	}
	testutil.Until(t, 5*time.Second, "the shell traps SIGTERM", func() bool { return strings.Contains(c.Tail(), "ready") })
	start := time.Now()
	if err := s.Stop(c); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("Stop took %v: the child did not see EOF", took)
	}
	var exit *exec.ExitError
	if err := c.Err(); !errors.As(err, &exit) || exit.ExitCode() != 7 {
		t.Errorf("Err() = %v, want exit status 7 (ended by EOF, not a signal)", err)
	}
}

func TestStopAllKillsWhatIgnoresSIGTERM(t *testing.T) {
	t.Parallel()
	s := New(t.TempDir())
	s.grace = 100 * time.Millisecond
	var children []*Child
	for _, name := range []string{"a", "b", "c"} {
		c, err := s.Start(name, exec.Command("sh", "-c", `trap '' TERM; echo ready; while :; do sleep 1; done`))
		if err != nil {
			t.Fatal(err)
		}
		children = append(children, c)
	}
	for _, c := range children {
		testutil.Until(t, 5*time.Second, c.Name+" traps SIGTERM", func() bool { return strings.Contains(c.Tail(), "ready") })
	}
	if n := s.Running(); n != 3 {
		t.Errorf("Running() = %d, want 3", n)
	}
	if err := s.StopAll(); err != nil {
		t.Fatal(err)
	}
	for _, c := range children {
		var exit *exec.ExitError
		if err := c.Err(); !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("%s: Err() = %v, want killed by SIGKILL", c.Name, err)
		}
	}
	if n := s.Running(); n != 0 {
		t.Errorf("Running() = %d after StopAll, want 0", n)
	}
}

func TestWithoutLogDirTheCallerKeepsStdout(t *testing.T) {
	t.Parallel()
	s := New("")
	cmd := exec.Command("sh", "-c", `echo hello; cat >/dev/null`)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd.Stdout = w
	c, err := s.Start("talker", cmd)
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer s.StopAll()
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil || line != "hello\n" {
		t.Errorf("stdout: %q, %v; want hello", line, err)
	}
	if c.LogPath() != "" || c.Tail() != "" {
		t.Errorf("LogPath() = %q, Tail() = %q, want none without a log folder", c.LogPath(), c.Tail())
	}
	if err := s.StopAll(); err != nil {
		t.Fatal(err)
	}
}

func TestStartFailure(t *testing.T) {
	t.Parallel()
	s := New(t.TempDir())
	if _, err := s.Start("missing", exec.Command(filepath.Join(t.TempDir(), "no-such-program"))); err == nil {
		t.Fatal("Start of a missing program succeeded")
	}
	if n := s.Running(); n != 0 {
		t.Errorf("Running() = %d after a failed start, want 0", n)
	}
}

func TestStartReporting(t *testing.T) {
	t.Parallel()
	s := New(t.TempDir())
	type report struct {
		N int `json:"n"`
	}
	// A line that is not a report is skipped; the child waits for its
	// stdin to close.
	c, r, err := StartReporting[report](s, "reporter", exec.Command("sh", "-c", `echo '{"n": 1}'; echo junk; echo '{"n": 2}'; cat >/dev/null`))
	if err != nil {
		t.Fatal(err)
	}
	defer s.StopAll()
	if _, err := r.AwaitFirst(context.Background(), c, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.Latest().N != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("Latest() = %+v, want n 2", r.Latest())
		}
		time.Sleep(10 * time.Millisecond)
	}

	quiet, qr, err := StartReporting[report](s, "silent", exec.Command("true"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := qr.AwaitFirst(context.Background(), quiet, 10*time.Second); err == nil {
		t.Error("AwaitFirst on a child that exits without a report: no error")
	}
}
