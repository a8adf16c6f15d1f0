package e2e

import (
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hafeed/hafeed/internal/testutil"
)

// TestSystemdNotify runs the agent as systemd would with Type=notify and
// WatchdogSec=: it must say READY=1 once it serves, send WATCHDOG=1
// keep-alives, announce a reload and its stop.
func TestSystemdNotify(t *testing.T) {
	t.Parallel()
	dir := testutil.ShortTempDir(t)
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	next := func(want string) time.Duration {
		t.Helper()
		start := time.Now()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case m, ok := <-msgs:
				if !ok {
					t.Fatalf("notify socket closed while waiting for %q", want)
				}
				if strings.Contains(m, want) {
					return time.Since(start)
				}
			case <-timeout:
				t.Fatalf("no %q notification within 10s", want)
			}
		}
	}

	a := startApp(t)
	h := startHafeed(t, hafeedOptions{config: loadConfig, appPort: a.port(),
		env: []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=400000"}})
	next("READY=1")
	// startHafeed returned after the control socket answered; the agent
	// said READY before, so this one is already queued.
	var gaps []time.Duration
	for range 4 {
		gaps = append(gaps, next("WATCHDOG=1"))
	}
	for _, g := range gaps[1:] {
		if g > 400*time.Millisecond {
			t.Errorf("watchdog keep-alives %v apart, want under the 400ms WatchdogSec", g)
		}
	}
	h.cmd.Process.Signal(syscall.SIGHUP)
	next("RELOADING=1")
	next("READY=1")
	h.stop()
	next("STOPPING=1")
}
