package metrics

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Pressure reads CPU pressure stall information (PSI): the share of time
// runnable tasks waited for a CPU, on the host or in one cgroup v2 group.
type Pressure struct {
	// ProcRoot is where procfs is mounted; "" is /proc.
	ProcRoot string
	// CgroupRoot is where the cgroup v2 hierarchy is mounted; "" is /sys/fs/cgroup.
	CgroupRoot string
	// Cgroup is the group to read, e.g. "/system.slice/ws.service"; "" is the host.
	Cgroup string
}

// CPUSome returns the "some avg10" CPU pressure as a fraction (0..1): the
// share of the last 10 seconds in which at least one task waited for a CPU.
// On a kernel without PSI the error satisfies errors.Is(err, os.ErrNotExist).
func (p *Pressure) CPUSome(ctx context.Context) (float64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	path := filepath.Join(orDefault(p.ProcRoot, defaultProcRoot), "pressure", "cpu")
	if p.Cgroup != "" {
		path = filepath.Join(cgroupDir(p.CgroupRoot, p.Cgroup), "cpu.pressure")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, psiReadError(err)
	}
	psi, err := parsePSI(string(b))
	if err != nil {
		return 0, fmt.Errorf("reading CPU pressure from %s: %w", path, err)
	}
	return min(max(psi.Some.Avg10/100, 0), 1), nil
}

// psiReadError words a failure to read a pressure file. A kernel booted
// with psi=0 has the files but refuses reads with EOPNOTSUPP; that is
// reported as os.ErrNotExist too, as PSI is missing all the same.
func psiReadError(err error) error {
	if errors.Is(err, syscall.EOPNOTSUPP) {
		return fmt.Errorf("reading CPU pressure: PSI is disabled in this kernel (%v): %w", err, os.ErrNotExist)
	}
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading CPU pressure: %w (a kernel without PSI, or no such cgroup)", err)
	}
	return fmt.Errorf("reading CPU pressure: %w", err)
}

// psiStats is the content of one pressure file.
type psiStats struct {
	// Some is the time at least one task stalled; Full, all of them at once
	// (absent for CPU before Linux 5.13).
	Some, Full psiAverages
}

// psiAverages are the stalled shares, in percent, over the last 10, 60 and
// 300 seconds.
type psiAverages struct {
	Avg10, Avg60, Avg300 float64
}

// parsePSI parses pressure file content:
//
//	some avg10=0.62 avg60=3.44 avg300=4.61 total=61016039
//	full avg10=0.00 avg60=0.00 avg300=0.00 total=0
func parsePSI(content string) (psiStats, error) {
	var psi psiStats
	haveSome := false
	for line := range strings.Lines(content) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		var dst *psiAverages
		switch fields[0] {
		case "some":
			dst, haveSome = &psi.Some, true
		case "full":
			dst = &psi.Full
		default:
			return psiStats{}, fmt.Errorf("malformed pressure line %q", strings.TrimSpace(line))
		}
		seen := 0
		for _, f := range fields[1:] {
			key, value, ok := strings.Cut(f, "=")
			if !ok {
				return psiStats{}, fmt.Errorf("malformed pressure field %q", f)
			}
			var avg *float64
			switch key {
			case "avg10":
				avg = &dst.Avg10
			case "avg60":
				avg = &dst.Avg60
			case "avg300":
				avg = &dst.Avg300
			default:
				continue // total, and anything a later kernel adds
			}
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				return psiStats{}, fmt.Errorf("malformed pressure field %q", f)
			}
			*avg = v
			seen++
		}
		if seen != 3 {
			return psiStats{}, fmt.Errorf("malformed pressure line %q: want avg10, avg60 and avg300", strings.TrimSpace(line))
		}
	}
	if !haveSome {
		return psiStats{}, errors.New("no \"some\" line")
	}
	return psi, nil
}
