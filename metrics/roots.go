package metrics

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Where the kernel interfaces are mounted when a sampler's root field is "".
const (
	defaultProcRoot   = "/proc"
	defaultCgroupRoot = "/sys/fs/cgroup"
)

// orDefault returns root, or def when root is "".
func orDefault(root, def string) string {
	if root == "" {
		return def
	}
	return root
}

// cgroupDir is the directory of the cgroup v2 group path under root.
func cgroupDir(root, group string) string {
	return filepath.Join(unifiedRoot(orDefault(root, defaultCgroupRoot)), filepath.FromSlash(group))
}

// unifiedRoot finds the cgroup v2 hierarchy under root: root itself on a
// cgroup v2 host, root/unified on a hybrid v1/v2 one.
func unifiedRoot(root string) string {
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		return root
	}
	if _, err := os.Stat(filepath.Join(root, "unified", "cgroup.controllers")); err == nil {
		return filepath.Join(root, "unified")
	}
	return root
}

// cpuCount is the number of CPUs a rate is divided by: override when it is
// positive, otherwise the cpuN lines of <procRoot>/stat.
func cpuCount(procRoot string, override int) (int, error) {
	if override > 0 {
		return override, nil
	}
	path := filepath.Join(orDefault(procRoot, defaultProcRoot), "stat")
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("counting CPUs: %w", err)
	}
	n := countCPUs(string(b))
	if n == 0 {
		return 0, fmt.Errorf("counting CPUs: no cpuN lines in %s", path)
	}
	return n, nil
}

// countCPUs counts the per-CPU "cpuN" lines of /proc/stat content.
func countCPUs(stat string) int {
	n := 0
	for line := range strings.Lines(stat) {
		name, _, _ := strings.Cut(line, " ")
		if num, ok := strings.CutPrefix(name, "cpu"); ok {
			if _, err := strconv.ParseUint(num, 10, 32); err == nil {
				n++
			}
		}
	}
	return n
}
