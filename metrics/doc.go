// Package metrics holds hafeed's load samplers, one source per file: each
// reads one kernel interface, with its root path injectable and its parsing
// done by pure functions that tests feed literal input.
//
// Samplers report a fraction from 0 to 1. Those that measure a rate (CPU
// busy time) return ErrNoData until they have two readings. A kernel
// interface that is missing (no PSI, no such cgroup, cgroup v1 only) makes
// an error that satisfies errors.Is(err, os.ErrNotExist). Cgroup samplers
// read cgroup v2, which a hybrid v1/v2 host mounts at /sys/fs/cgroup/unified.
package metrics
