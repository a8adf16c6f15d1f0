package metrics

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseProcStat(t *testing.T) {
	t.Parallel()
	// statLine builds a /proc/PID/stat line with the given command name.
	statLine := func(comm string) string {
		return "77 (" + comm + ") R 1 77 77 0 -1 4194304 99 0 0 0 31 7 0 0 20 0 1 0 4242 3133440 396 18446744073709551615 0 0 0\n"
	}
	tests := []struct {
		name, content string
		want          procStat
		wantErr       bool
	}{
		{"fixture", readFixture(t, "proc/1234/stat"), procStat{utime: 500, stime: 250, startTime: 98765}, false},
		{"plain", statLine("nginx"), procStat{utime: 31, stime: 7, startTime: 4242}, false},
		{"spaces", statLine("my worker 1"), procStat{utime: 31, stime: 7, startTime: 4242}, false},
		{"parentheses", statLine(") 1 2 3 ) ("), procStat{utime: 31, stime: 7, startTime: 4242}, false},
		{"looks like fields", statLine("x) S 1 1 1 0 -1 0 0 0 0 0 999 999"), procStat{utime: 31, stime: 7, startTime: 4242}, false},
		{"no comm", "77 nginx R 1 77", procStat{}, true},
		{"truncated", "77 (nginx) R 1 77 77 0 -1 4194304 99 0 0 0 31 7\n", procStat{}, true},
		{"bad utime", strings.Replace(statLine("x"), " 31 ", " -31 ", 1), procStat{}, true},
		{"empty", "", procStat{}, true},
	}
	for _, tt := range tests {
		got, err := parseProcStat(tt.content)
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: parseProcStat error = %v, want error %v", tt.name, err, tt.wantErr)
			continue
		}
		if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(procStat{})); diff != "" {
			t.Errorf("%s: parseProcStat (-want +got):\n%s", tt.name, diff)
		}
	}
}

// procStatLine is a /proc/PID/stat line with the given CPU ticks and start time.
func procStatLine(pid int, utime, stime, startTime uint64) string {
	return fmt.Sprintf("%d (ws (worker)) S 1 %d %d 0 -1 4194560 2210 0 3 0 %d %d 0 0 20 0 4 0 %d 734003200 12801\n",
		pid, pid, pid, utime, stime, startTime)
}

func TestProcessCPUBusy(t *testing.T) {
	t.Parallel()
	// procStep moves the clock by Wait, makes pid (started at Start) the
	// watched process with Ticks of CPU time, then calls Busy.
	type procStep struct {
		Wait         time.Duration
		PID          int
		Start, Ticks uint64
		Want         float64
		NoData       bool
	}
	tests := []struct {
		name    string
		pidFile bool
		cpus    int
		steps   []procStep
	}{
		{"one busy core of four", false, 0, []procStep{
			{PID: 1234, Start: 5, Ticks: 1000, NoData: true},
			{Wait: 10 * time.Second, PID: 1234, Start: 5, Ticks: 2000, Want: 0.25},
			{Wait: 10 * time.Second, PID: 1234, Start: 5, Ticks: 2000, Want: 0},
			{Wait: time.Second, PID: 1234, Start: 5, Ticks: 2100, Want: 0.25},
		}},
		{"one busy core of two", false, 2, []procStep{
			{PID: 1234, Start: 5, Ticks: 0, NoData: true},
			{Wait: 2 * time.Second, PID: 1234, Start: 5, Ticks: 200, Want: 0.5},
		}},
		{"clamped", false, 1, []procStep{
			{PID: 1234, Start: 5, Ticks: 0, NoData: true},
			{Wait: time.Second, PID: 1234, Start: 5, Ticks: 300, Want: 1},
		}},
		{"restart followed through the PID file", true, 1, []procStep{
			{PID: 1234, Start: 5, Ticks: 5000, NoData: true},
			{Wait: time.Second, PID: 1234, Start: 5, Ticks: 5050, Want: 0.5},
			{Wait: time.Second, PID: 2345, Start: 900, Ticks: 10, NoData: true},
			{Wait: time.Second, PID: 2345, Start: 900, Ticks: 30, Want: 0.2},
		}},
		{"PID reused by a new process", false, 1, []procStep{
			{PID: 1234, Start: 5, Ticks: 5000, NoData: true},
			{Wait: time.Second, PID: 1234, Start: 700, Ticks: 5040, NoData: true},
			{Wait: time.Second, PID: 1234, Start: 700, Ticks: 5070, Want: 0.3},
		}},
		{"no time passed keeps the baseline", false, 1, []procStep{
			{PID: 1234, Start: 5, Ticks: 0, NoData: true},
			{PID: 1234, Start: 5, Ticks: 10, NoData: true},
			{Wait: time.Second, PID: 1234, Start: 5, Ticks: 40, Want: 0.4},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			procRoot := t.TempDir()
			copyFixtures(t, "proc", procRoot)
			pidFile := filepath.Join(t.TempDir(), "ws.pid")
			clock := newFakeClock()
			p := &ProcessCPU{ProcRoot: procRoot, CPUs: tt.cpus, now: clock.now}
			if tt.pidFile {
				p.PIDFile = pidFile
			} else {
				p.PID = 1234
			}
			for i, step := range tt.steps {
				clock.advance(step.Wait)
				writeFile(t, filepath.Join(procRoot, fmt.Sprint(step.PID), "stat"), procStatLine(step.PID, step.Ticks*3/4, step.Ticks-step.Ticks*3/4, step.Start))
				writeFile(t, pidFile, fmt.Sprintf("%d\n", step.PID))
				got, err := p.Busy(context.Background())
				if step.NoData {
					if !errors.Is(err, ErrNoData) {
						t.Errorf("step %d: Busy = %v, %v; want ErrNoData", i, got, err)
					}
					continue
				}
				if err != nil || !near(got, step.Want) {
					t.Errorf("step %d: Busy = %v, %v; want %v", i, got, err, step.Want)
				}
			}
		})
	}
}

func TestProcessCPUErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missingPID := filepath.Join(dir, "missing.pid")
	stalePID := filepath.Join(dir, "stale.pid")
	writeFile(t, stalePID, "999999\n")
	garbagePID := filepath.Join(dir, "garbage.pid")
	writeFile(t, garbagePID, "not a pid\n")
	tests := []struct {
		name string
		p    ProcessCPU
		// wantIn are strings the error must name.
		wantIn   []string
		notExist bool
	}{
		{"no process", ProcessCPU{ProcRoot: "testdata/proc", PID: 999999}, []string{"process 999999"}, true},
		{"no PID file", ProcessCPU{ProcRoot: "testdata/proc", PIDFile: missingPID}, []string{missingPID}, true},
		{"stale PID file", ProcessCPU{ProcRoot: "testdata/proc", PIDFile: stalePID}, []string{"process 999999", stalePID}, true},
		{"garbage PID file", ProcessCPU{ProcRoot: "testdata/proc", PIDFile: garbagePID}, []string{garbagePID, "not a pid"}, false},
		{"nothing set", ProcessCPU{ProcRoot: "testdata/proc"}, []string{"neither"}, false},
	}
	for _, tt := range tests {
		_, err := tt.p.Busy(context.Background())
		if err == nil || errors.Is(err, ErrNoData) {
			t.Errorf("%s: Busy error = %v, want a failure", tt.name, err)
			continue
		}
		for _, s := range tt.wantIn {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: error %q does not name %q", tt.name, err, s)
			}
		}
		if errors.Is(err, os.ErrNotExist) != tt.notExist {
			t.Errorf("%s: errors.Is(%v, os.ErrNotExist) = %v, want %v", tt.name, err, !tt.notExist, tt.notExist)
		}
	}
}

// TestProcessCPURealProcess watches the test process itself while it burns
// CPU, through the real procfs and clock.
func TestProcessCPURealProcess(t *testing.T) {
	t.Parallel()
	p := &ProcessCPU{PID: os.Getpid()}
	if _, err := p.Busy(context.Background()); !errors.Is(err, ErrNoData) {
		t.Fatalf("first Busy: err = %v, want ErrNoData", err)
	}
	// Burn until procfs shows at least two ticks more, or give up after a while.
	start, err := parseProcStat(readSelfStat(t))
	if err != nil {
		t.Fatal(err)
	}
	x := 1.0
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		for range 100000 {
			x = x*1.0000001 + 1e-9
		}
		now, err := parseProcStat(readSelfStat(t))
		if err != nil {
			t.Fatal(err)
		}
		if now.ticks() >= start.ticks()+2 {
			break
		}
	}
	got, err := p.Busy(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got <= 0 || got > 1 {
		t.Errorf("Busy = %v (x=%v), want within (0, 1]", got, x)
	}
}

func readSelfStat(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
