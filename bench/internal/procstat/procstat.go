package procstat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// CPUTicks is utime and stime of a process, all threads, from
// /proc/PID/stat, in clock ticks (ClockTicks a second).
func CPUTicks(pid int) (utime, stime uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	return parseStatTicks(b, pid)
}

// parseStatTicks reads utime and stime from the contents of /proc/PID/stat.
func parseStatTicks(b []byte, pid int) (utime, stime uint64, err error) {
	// The command name is in parentheses and may hold spaces: fields
	// start after the last ')'. utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat: %w", pid, err)
	}
	return utime, stime, nil
}

// ClockTicks is USER_HZ, the unit of /proc/PID/stat times (AT_CLKTCK).
func ClockTicks() uint64 {
	auxv, err := unix.Auxv()
	if err == nil {
		for _, kv := range auxv {
			if kv[0] == 17 && kv[1] > 0 { // AT_CLKTCK
				return uint64(kv[1])
			}
		}
	}
	return 100
}

// StatusKB reads a "Key:  N kB" line of /proc/PID/status, such as VmRSS
// or VmHWM.
func StatusKB(pid int, key string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, key+":"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", key, pid)
}

// Sockstat is the TCP line of /proc/net/sockstat.
type Sockstat struct {
	InUse    int `json:"inuse"`
	TimeWait int `json:"tw"`
}

// ReadSockstat reads the TCP line of /proc/net/sockstat; zero when it
// cannot.
func ReadSockstat() Sockstat {
	var s Sockstat
	for line := range strings.Lines(ReadString("/proc/net/sockstat")) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "TCP:" {
			continue
		}
		for i := 1; i+1 < len(f); i += 2 {
			n, _ := strconv.Atoi(f[i+1])
			switch f[i] {
			case "inuse":
				s.InUse = n
			case "tw":
				s.TimeWait = n
			}
		}
	}
	return s
}

// timeWaitThreshold is how many TIME-WAIT sockets WaitTimeWait tolerates.
const timeWaitThreshold = 1000

// WaitTimeWait waits, up to limit, until the TIME-WAIT sockets of an
// earlier run have expired: they sit in the kernel table that every
// connection count walks. logf reports what it waits for.
func WaitTimeWait(ctx context.Context, limit time.Duration, logf func(string, ...any)) error {
	tw := ReadSockstat().TimeWait
	if tw <= timeWaitThreshold {
		return nil
	}
	if limit <= 0 {
		logf("warning: %d TIME-WAIT sockets (an earlier run?) will inflate the timings", tw)
		return nil
	}
	logf("%d TIME-WAIT sockets on the host (an earlier run?): waiting up to %s for them to expire", tw, limit)
	deadline := time.Now().Add(limit)
	for tw > timeWaitThreshold && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(time.Second):
		}
		tw = ReadSockstat().TimeWait
	}
	if tw > timeWaitThreshold {
		logf("warning: still %d TIME-WAIT sockets; they will inflate the timings", tw)
	}
	return nil
}

// HostCPU is the aggregate "cpu" line of /proc/stat: busy and total ticks.
type HostCPU struct{ busy, total uint64 }

// ReadHostCPU reads the aggregate "cpu" line of /proc/stat.
func ReadHostCPU() HostCPU {
	for line := range strings.Lines(ReadString("/proc/stat")) {
		f := strings.Fields(line)
		if len(f) < 5 || f[0] != "cpu" {
			continue
		}
		var h HostCPU
		// user nice system idle iowait irq softirq steal (guest is in user)
		for i, v := range f[1:min(len(f), 9)] {
			n, _ := strconv.ParseUint(v, 10, 64)
			h.total += n
			if i != 3 && i != 4 {
				h.busy += n
			}
		}
		return h
	}
	return HostCPU{}
}

// BusySince is the host's busy share of all CPUs since h, in percent.
func (h HostCPU) BusySince() float64 { return h.BusyTo(ReadHostCPU()) }

// BusyTo is the host's busy share of all CPUs from h to later, in percent.
func (h HostCPU) BusyTo(later HostCPU) float64 {
	if later.total <= h.total {
		return 0
	}
	return float64(later.busy-h.busy) / float64(later.total-h.total) * 100
}

// LoadAvg is the first three fields of /proc/loadavg.
type LoadAvg struct {
	One     float64 `json:"1m"`
	Five    float64 `json:"5m"`
	Fifteen float64 `json:"15m"`
}

// ReadLoadAvg reads /proc/loadavg; zero when it cannot.
func ReadLoadAvg() LoadAvg {
	f := strings.Fields(ReadString("/proc/loadavg"))
	var l LoadAvg
	if len(f) >= 3 {
		l.One, _ = strconv.ParseFloat(f[0], 64)
		l.Five, _ = strconv.ParseFloat(f[1], 64)
		l.Fifteen, _ = strconv.ParseFloat(f[2], 64)
	}
	return l
}

// String is the load average as uptime prints it.
func (l LoadAvg) String() string { return fmt.Sprintf("%.2f, %.2f, %.2f", l.One, l.Five, l.Fifteen) }

// PortRange is net.ipv4.ip_local_port_range, Linux's default when it
// cannot be read.
func PortRange() (low, high int) {
	low, high = 32768, 60999
	if f := strings.Fields(ReadString("/proc/sys/net/ipv4/ip_local_port_range")); len(f) == 2 {
		l, err1 := strconv.Atoi(f[0])
		h, err2 := strconv.Atoi(f[1])
		if err1 == nil && err2 == nil && l <= h {
			low, high = l, h
		}
	}
	return low, high
}

// ReadString is the contents of a file, "" when it cannot be read.
func ReadString(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(b)
}

// ReadInt is the number a file holds, 0 when it cannot be read.
func ReadInt(path string) int {
	n, _ := strconv.Atoi(strings.TrimSpace(ReadString(path)))
	return n
}

// TCPExt is the TcpExt counters of /proc/net/netstat (SYN retransmits,
// listen queue overflows, ...) by name; empty when it cannot be read.
func TCPExt() map[string]int64 { return parseTCPExt(ReadString("/proc/net/netstat")) }

// parseTCPExt reads the TcpExt lines of /proc/net/netstat: a line of names
// and a line of values.
func parseTCPExt(s string) map[string]int64 {
	out := map[string]int64{}
	var names []string
	for line := range strings.Lines(s) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "TcpExt:" {
			continue
		}
		if names == nil {
			names = f[1:]
			continue
		}
		for i, v := range f[1:] {
			if i < len(names) {
				n, err := strconv.ParseInt(v, 10, 64)
				if err == nil {
					out[names[i]] = n
				}
			}
		}
		break
	}
	return out
}

// MemAvailableKB is MemAvailable of /proc/meminfo, 0 when it cannot be read.
func MemAvailableKB() int64 {
	for line := range strings.Lines(ReadString("/proc/meminfo")) {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}
