package metrics

import (
	"context"
	"errors"
	"fmt"

	"github.com/shirou/gopsutil/v4/common"
	"github.com/shirou/gopsutil/v4/cpu"
)

// ErrNoData means a sampler has nothing to report yet (a rate needs two
// readings); it is not a failure.
var ErrNoData = errors.New("no data yet")

// HostCPU measures the host's CPU busy fraction between successive calls.
// It is not safe for concurrent use.
type HostCPU struct {
	// ProcRoot is where procfs is mounted; "" is /proc.
	ProcRoot string

	prev cpu.TimesStat
	have bool
}

// Busy returns the fraction of CPU time (0..1, all cores together) that was
// not idle since the previous call. The first call returns ErrNoData.
func (h *HostCPU) Busy(ctx context.Context) (float64, error) {
	if h.ProcRoot != "" {
		ctx = context.WithValue(ctx, common.EnvKey, common.EnvMap{common.HostProcEnvKey: h.ProcRoot})
	}
	times, err := cpu.TimesWithContext(ctx, false)
	if err != nil {
		return 0, fmt.Errorf("reading host CPU times: %w", err)
	}
	if len(times) == 0 {
		return 0, errors.New("reading host CPU times: no aggregate cpu line")
	}
	cur := times[0]
	prev, had := h.prev, h.have
	h.prev, h.have = cur, true
	if !had {
		return 0, ErrNoData
	}
	return busyFraction(prev, cur), nil
}

// busyFraction is the non-idle share of the CPU time between two readings.
func busyFraction(prev, cur cpu.TimesStat) float64 {
	idle := (cur.Idle + cur.Iowait) - (prev.Idle + prev.Iowait)
	total := cur.Total() - prev.Total()
	if total <= 0 {
		return 0
	}
	return min(max((total-idle)/total, 0), 1)
}
