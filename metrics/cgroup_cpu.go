package metrics

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CgroupCPU measures how busy a cgroup v2 group keeps the CPUs it may use,
// between successive calls. It is not safe for concurrent use.
type CgroupCPU struct {
	// Root is where the cgroup v2 hierarchy is mounted; "" is /sys/fs/cgroup.
	// On a hybrid v1/v2 host that is usually /sys/fs/cgroup/unified.
	Root string
	// Path is the group, as /proc/PID/cgroup shows it, e.g. "/system.slice/ws.service".
	Path string
	// ProcRoot is where procfs is mounted, for counting CPUs; "" is /proc.
	ProcRoot string
	// CPUs overrides the number of CPUs on the host; 0 counts them in <ProcRoot>/stat.
	CPUs int

	now      func() time.Time
	prevUsec uint64
	prevAt   time.Time
	have     bool
}

// Busy returns the group's CPU usage since the previous call as a fraction
// (0..1) of its capacity: its cpu.max quota, capped at the host's CPUs, or
// the host's CPUs when it has no quota. The first call, and the first after
// the usage counter went back (the group was recreated), return ErrNoData.
func (c *CgroupCPU) Busy(ctx context.Context) (float64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	dir := cgroupDir(c.Root, c.Path)
	stat, err := os.ReadFile(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return 0, fmt.Errorf("reading CPU usage of cgroup %s: %w", c.Path, err)
	}
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	at := now()
	usage, err := parseCPUStat(string(stat))
	if err != nil {
		return 0, fmt.Errorf("reading CPU usage of cgroup %s: %w", c.Path, err)
	}
	capacity, err := c.capacity(dir)
	if err != nil {
		return 0, err
	}

	prevUsage, prevAt, had := c.prevUsec, c.prevAt, c.have
	wall := at.Sub(prevAt)
	if had && wall <= 0 {
		return 0, ErrNoData // no time has passed: keep the baseline
	}
	c.prevUsec, c.prevAt, c.have = usage, at, true
	if !had || usage < prevUsage {
		return 0, ErrNoData
	}
	usedSeconds := float64(usage-prevUsage) / 1e6
	return min(max(usedSeconds/(wall.Seconds()*capacity), 0), 1), nil
}

// capacity is how many CPUs the group in dir may use.
func (c *CgroupCPU) capacity(dir string) (float64, error) {
	host, err := cpuCount(c.ProcRoot, c.CPUs)
	if err != nil {
		return 0, err
	}
	b, err := os.ReadFile(filepath.Join(dir, "cpu.max"))
	if errors.Is(err, os.ErrNotExist) {
		// The root group, or the cpu controller is not enabled for this
		// group (or is bound to cgroup v1): there is no quota.
		return float64(host), nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading CPU quota of cgroup %s: %w", c.Path, err)
	}
	quota, limited, err := parseCPUMax(string(b))
	if err != nil {
		return 0, fmt.Errorf("reading CPU quota of cgroup %s: %w", c.Path, err)
	}
	if !limited {
		return float64(host), nil
	}
	return min(quota, float64(host)), nil
}

// parseCPUStat returns usage_usec, the group's total CPU time in
// microseconds, from cpu.stat content.
func parseCPUStat(content string) (usageUsec uint64, err error) {
	for line := range strings.Lines(content) {
		key, value, _ := strings.Cut(strings.TrimSpace(line), " ")
		if key != "usage_usec" {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(value), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed cpu.stat line %q: %w", strings.TrimSpace(line), err)
		}
		return n, nil
	}
	return 0, errors.New("no usage_usec in cpu.stat")
}

// parseCPUMax returns the quota of cpu.max content ("$MAX $PERIOD") in CPUs;
// limited is false when $MAX is "max".
func parseCPUMax(content string) (cpus float64, limited bool, err error) {
	fields := strings.Fields(content)
	if len(fields) != 2 {
		return 0, false, fmt.Errorf("malformed cpu.max %q: want \"$MAX $PERIOD\"", strings.TrimSpace(content))
	}
	period, err := strconv.ParseUint(fields[1], 10, 64)
	if err != nil || period == 0 {
		return 0, false, fmt.Errorf("malformed cpu.max period %q", fields[1])
	}
	if fields[0] == "max" {
		return 0, false, nil
	}
	quota, err := strconv.ParseUint(fields[0], 10, 64)
	if err != nil || quota == 0 {
		return 0, false, fmt.Errorf("malformed cpu.max quota %q", fields[0])
	}
	return float64(quota) / float64(period), true, nil
}

// CgroupOfPID returns the cgroup v2 path of process pid, read from
// <procRoot>/PID/cgroup; procRoot "" is /proc.
func CgroupOfPID(procRoot string, pid int) (string, error) {
	path := filepath.Join(orDefault(procRoot, defaultProcRoot), strconv.Itoa(pid), "cgroup")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("finding the cgroup of process %d: %w", pid, err)
	}
	group, err := parseProcCgroup(string(b))
	if err != nil {
		return "", fmt.Errorf("finding the cgroup of process %d: %w", pid, err)
	}
	return group, nil
}

// parseProcCgroup returns the cgroup v2 path, the "0::/path" line, of
// /proc/PID/cgroup content. Without one (a host with cgroup v1 only) the
// error satisfies errors.Is(err, os.ErrNotExist).
func parseProcCgroup(content string) (string, error) {
	for line := range strings.Lines(content) {
		if group, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "0::"); ok {
			if !strings.HasPrefix(group, "/") {
				return "", fmt.Errorf("malformed cgroup v2 path %q", group)
			}
			return group, nil
		}
	}
	return "", fmt.Errorf("no cgroup v2 (\"0::\") line, the process is only in cgroup v1 hierarchies: %w", os.ErrNotExist)
}
