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

func TestParseCPUStat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, content string
		want          uint64
		wantErr       bool
	}{
		{"fixture", readFixture(t, "cgroup/cpu.stat"), 8021845, false},
		{"core stats only", "usage_usec 290418345\nuser_usec 182714617\nsystem_usec 107703727\nnice_usec 0\n", 290418345, false},
		{"not first", "user_usec 1\nusage_usec 42", 42, false},
		{"missing", "user_usec 1\nsystem_usec 2\n", 0, true},
		{"malformed", "usage_usec lots\n", 0, true},
		{"negative", "usage_usec -5\n", 0, true},
		{"empty", "", 0, true},
	}
	for _, tt := range tests {
		got, err := parseCPUStat(tt.content)
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: parseCPUStat error = %v, want error %v", tt.name, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("%s: parseCPUStat = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestParseCPUMax(t *testing.T) {
	t.Parallel()
	type result struct {
		CPUs    float64
		Limited bool
		Err     bool
	}
	tests := []struct {
		name, content string
		want          result
	}{
		{"fixture", readFixture(t, "cgroup/cpu.max"), result{CPUs: 1.5, Limited: true}},
		{"no quota", "max 100000\n", result{}},
		{"half a CPU", "50000 100000", result{CPUs: 0.5, Limited: true}},
		{"other period", "20000 10000\n", result{CPUs: 2, Limited: true}},
		{"quota only", "max\n", result{Err: true}},
		{"zero period", "50000 0\n", result{Err: true}},
		{"zero quota", "0 100000\n", result{Err: true}},
		{"bad quota", "lots 100000\n", result{Err: true}},
		{"three fields", "1 2 3\n", result{Err: true}},
		{"empty", "", result{Err: true}},
	}
	for _, tt := range tests {
		cpus, limited, err := parseCPUMax(tt.content)
		got := result{CPUs: cpus, Limited: limited, Err: err != nil}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: parseCPUMax(%q) (-want +got):\n%s", tt.name, tt.content, diff)
		}
	}
}

func TestParseProcCgroup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, content, want string
		wantErr             bool
	}{
		{"hybrid fixture", readFixture(t, "proc/1234/cgroup"), "/system.slice/ws.service", false},
		{"pure v2", "0::/user.slice/user-1000.slice/session-2.scope\n", "/user.slice/user-1000.slice/session-2.scope", false},
		{"root", "0::/\n", "/", false},
		{"no newline", "0::/a b", "/a b", false},
		{"v1 only", "4:memory:/x\n1:cpu:/\n", "", true},
		{"relative", "0::x\n", "", true},
		{"empty", "", "", true},
	}
	for _, tt := range tests {
		got, err := parseProcCgroup(tt.content)
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: parseProcCgroup error = %v, want error %v", tt.name, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("%s: parseProcCgroup = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestCgroupOfPID(t *testing.T) {
	t.Parallel()
	got, err := CgroupOfPID("testdata/proc", 1234)
	if err != nil {
		t.Fatal(err)
	}
	if want := "/system.slice/ws.service"; got != want {
		t.Errorf("CgroupOfPID = %q, want %q", got, want)
	}
	if _, err := CgroupOfPID("testdata/proc", 999999); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("CgroupOfPID(missing): err = %v, want os.ErrNotExist", err)
	}
	if _, err := parseProcCgroup("1:cpu:/\n"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("parseProcCgroup(v1 only): err = %v, want os.ErrNotExist", err)
	}
	// The real process is in some cgroup v2 group, if only the root.
	self, err := CgroupOfPID("", os.Getpid())
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("no cgroup v2 here: %v", err)
	}
	if err != nil || !strings.HasPrefix(self, "/") {
		t.Errorf("CgroupOfPID(self) = %q, %v; want a path", self, err)
	}
}

// cpuStep is one sampling of a CgroupCPU or ProcessCPU test: the clock moves
// by Wait, the files are rewritten, then Busy is called.
type cpuStep struct {
	Wait time.Duration
	// Usage is the CPU time used so far.
	Usage time.Duration
	Want  float64
	// NoData means Busy must return ErrNoData.
	NoData bool
}

func TestCgroupCPUBusy(t *testing.T) {
	t.Parallel()
	const group = "/system.slice/ws.service"
	tests := []struct {
		name string
		// cpuMax is the content of cpu.max; "" means the file is absent.
		cpuMax string
		cpus   int
		steps  []cpuStep
	}{
		{"quota 1.5 CPUs", "150000 100000", 0, []cpuStep{
			{Usage: 10 * time.Second, NoData: true},
			{Wait: 10 * time.Second, Usage: 17500 * time.Millisecond, Want: 0.5}, // 7.5s of 15s
			{Wait: 2 * time.Second, Usage: 20500 * time.Millisecond, Want: 1},    // 3s of 3s
			{Wait: 4 * time.Second, Usage: 20500 * time.Millisecond, Want: 0},
		}},
		{"no quota: host CPUs from procfs", "max 100000", 0, []cpuStep{
			{Usage: 0, NoData: true},
			{Wait: 5 * time.Second, Usage: 5 * time.Second, Want: 0.25}, // 5s of 4×5s
		}},
		{"no cpu.max file", "", 2, []cpuStep{
			{Usage: time.Second, NoData: true},
			{Wait: 10 * time.Second, Usage: 6 * time.Second, Want: 0.25}, // 5s of 2×10s
		}},
		{"quota above host capped", "800000 100000", 0, []cpuStep{
			{Usage: 0, NoData: true},
			{Wait: time.Second, Usage: 2 * time.Second, Want: 0.5}, // 2s of 4×1s, not of 8×1s
		}},
		{"more than capacity is clamped", "50000 100000", 0, []cpuStep{
			{Usage: 0, NoData: true},
			{Wait: time.Second, Usage: 2 * time.Second, Want: 1},
		}},
		{"group recreated", "max 100000", 1, []cpuStep{
			{Usage: 50 * time.Second, NoData: true},
			{Wait: time.Second, Usage: 200 * time.Millisecond, NoData: true},
			{Wait: time.Second, Usage: 700 * time.Millisecond, Want: 0.5},
		}},
		{"no time passed keeps the baseline", "max 100000", 1, []cpuStep{
			{Usage: 0, NoData: true},
			{Wait: 0, Usage: 100 * time.Millisecond, NoData: true},
			{Wait: time.Second, Usage: 300 * time.Millisecond, Want: 0.3},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cgroupRoot := t.TempDir()
			groupDir := filepath.Join(cgroupRoot, filepath.FromSlash(group))
			copyFixtures(t, "cgroup", groupDir)
			if tt.cpuMax == "" {
				if err := os.Remove(filepath.Join(groupDir, "cpu.max")); err != nil {
					t.Fatal(err)
				}
			} else {
				writeFile(t, filepath.Join(groupDir, "cpu.max"), tt.cpuMax+"\n")
			}
			clock := newFakeClock()
			c := &CgroupCPU{Root: cgroupRoot, Path: group, ProcRoot: "testdata/proc", CPUs: tt.cpus, now: clock.now}
			for i, step := range tt.steps {
				clock.advance(step.Wait)
				writeFile(t, filepath.Join(groupDir, "cpu.stat"),
					fmt.Sprintf("usage_usec %d\nuser_usec 0\nsystem_usec 0\n", step.Usage.Microseconds()))
				got, err := c.Busy(context.Background())
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

func TestCgroupCPUErrors(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "bad", "cpu.stat"), "usage_usec x\n")
	writeFile(t, filepath.Join(root, "badmax", "cpu.stat"), "usage_usec 1\n")
	writeFile(t, filepath.Join(root, "badmax", "cpu.max"), "lots\n")
	for _, tt := range []struct {
		path     string
		notExist bool
	}{
		{"/missing", true},
		{"/bad", false},
		{"/badmax", false},
	} {
		c := &CgroupCPU{Root: root, Path: tt.path, CPUs: 1}
		_, err := c.Busy(context.Background())
		if err == nil || errors.Is(err, ErrNoData) || errors.Is(err, os.ErrNotExist) != tt.notExist {
			t.Errorf("%s: Busy error = %v, want a failure (not exist: %v)", tt.path, err, tt.notExist)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	writeFile(t, filepath.Join(root, "ok", "cpu.stat"), "usage_usec 1\n")
	if _, err := (&CgroupCPU{Root: root, Path: "/ok", CPUs: 1}).Busy(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Busy(cancelled): err = %v, want context.Canceled", err)
	}
}
