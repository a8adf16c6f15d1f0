package metrics

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/shirou/gopsutil/v4/common"
	"github.com/shirou/gopsutil/v4/mem"
)

// Memory measures how much of its memory the host, or one cgroup v2 group,
// is using.
type Memory struct {
	// ProcRoot is where procfs is mounted; "" is /proc.
	ProcRoot string
	// CgroupRoot is where the cgroup v2 hierarchy is mounted; "" is /sys/fs/cgroup.
	CgroupRoot string
	// Cgroup is the group to measure, e.g. "/system.slice/ws.service"; ""
	// (or "/", which has no memory.current) is the whole host.
	Cgroup string
}

// Used returns the fraction (0..1) of memory in use. For the host that is
// (MemTotal − MemAvailable) / MemTotal. For a group it is its working set,
// memory.current less the inactive file cache the kernel reclaims first
// (memory.stat inactive_file, as the kubelet counts it), over memory.max,
// or over the host's memory when memory.max is "max" or larger.
func (m *Memory) Used(ctx context.Context) (float64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	host, err := m.host(ctx)
	if err != nil {
		return 0, err
	}
	if m.Cgroup == "" || m.Cgroup == "/" {
		if host.Total == 0 {
			return 0, errors.New("reading host memory: MemTotal is 0")
		}
		return min(max(float64(host.Total-min(host.Available, host.Total))/float64(host.Total), 0), 1), nil
	}

	dir := cgroupDir(m.CgroupRoot, m.Cgroup)
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "", fmt.Errorf("reading memory of cgroup %s: %w", m.Cgroup, err)
		}
		return string(b), nil
	}
	content, err := read("memory.current")
	if err != nil {
		return 0, err
	}
	current, isNumber, err := parseCgroupValue(content)
	if err == nil && !isNumber {
		err = errors.New(`malformed value "max": want a number`)
	}
	if err != nil {
		return 0, fmt.Errorf("reading memory.current of cgroup %s: %w", m.Cgroup, err)
	}
	if content, err = read("memory.stat"); err != nil {
		return 0, err
	}
	inactiveFile, err := parseMemoryStat(content, "inactive_file")
	if err != nil {
		return 0, fmt.Errorf("reading memory.stat of cgroup %s: %w", m.Cgroup, err)
	}
	if content, err = read("memory.max"); err != nil {
		return 0, err
	}
	limit, limited, err := parseCgroupValue(content)
	if err != nil {
		return 0, fmt.Errorf("reading memory.max of cgroup %s: %w", m.Cgroup, err)
	}
	if !limited || limit > host.Total {
		limit = host.Total
	}
	if limit == 0 {
		return 1, nil // memory.max is 0: nothing more fits
	}
	workingSet := current - min(inactiveFile, current)
	return min(float64(workingSet)/float64(limit), 1), nil
}

// host reads the host's memory through gopsutil, from ProcRoot.
func (m *Memory) host(ctx context.Context) (*mem.VirtualMemoryStat, error) {
	if m.ProcRoot != "" {
		ctx = context.WithValue(ctx, common.EnvKey, common.EnvMap{common.HostProcEnvKey: m.ProcRoot})
	}
	vm, err := mem.VirtualMemoryWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading host memory: %w", err)
	}
	return vm, nil
}

// parseCgroupValue parses a single-value cgroup file such as memory.current
// or memory.max; limited is false when it holds "max".
func parseCgroupValue(content string) (value uint64, limited bool, err error) {
	s := strings.TrimSpace(content)
	if s == "max" {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("malformed value %q: want a number or \"max\"", s)
	}
	return n, true, nil
}

// parseMemoryStat returns the value of key in memory.stat content.
func parseMemoryStat(content, key string) (uint64, error) {
	for line := range strings.Lines(content) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		if k != key {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed %s %q", key, strings.TrimSpace(v))
		}
		return n, nil
	}
	return 0, fmt.Errorf("no %s in memory.stat", key)
}
