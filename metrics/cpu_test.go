package metrics

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/shirou/gopsutil/v4/cpu"
)

func TestBusyFraction(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		prev, cur cpu.TimesStat
		want      float64
	}{
		{"idle", cpu.TimesStat{Idle: 100}, cpu.TimesStat{Idle: 200}, 0},
		{"quarter busy", cpu.TimesStat{User: 10, Idle: 90}, cpu.TimesStat{User: 20, System: 5, Idle: 165, Iowait: 10}, 0.15},
		{"all busy", cpu.TimesStat{User: 10}, cpu.TimesStat{User: 30, Steal: 10}, 1},
		{"no time passed", cpu.TimesStat{User: 10}, cpu.TimesStat{User: 10}, 0},
	}
	for _, tt := range tests {
		if got := busyFraction(tt.prev, tt.cur); got < tt.want-1e-9 || got > tt.want+1e-9 {
			t.Errorf("%s: busyFraction = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestHostCPUFromProcRoot(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	stat := func(user, idle int) {
		line := []byte("cpu  " + strconv.Itoa(user) + " 0 0 " + strconv.Itoa(idle) + " 0 0 0 0 0 0\n")
		if err := os.WriteFile(filepath.Join(root, "stat"), line, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h := &HostCPU{ProcRoot: root}
	stat(1000, 9000)
	if _, err := h.Busy(context.Background()); !errors.Is(err, ErrNoData) {
		t.Fatalf("first Busy: err = %v, want ErrNoData", err)
	}
	stat(1300, 9700) // 300 busy of 1000
	got, err := h.Busy(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got < 0.299 || got > 0.301 {
		t.Errorf("Busy = %v, want 0.3", got)
	}
}
