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

// userHZ is the unit of the CPU times in /proc/PID/stat: USER_HZ, which is
// 100 on every Linux architecture hafeed runs on.
const userHZ = 100

// ProcessCPU measures the CPU time one process uses between successive
// calls. It is not safe for concurrent use.
type ProcessCPU struct {
	// ProcRoot is where procfs is mounted; "" is /proc.
	ProcRoot string
	// PID is the process to watch, when PIDFile is "".
	PID int
	// PIDFile, when set, names a file holding the PID; it is read on every
	// call, so a restarted process is followed.
	PIDFile string
	// CPUs overrides the number of CPUs on the host; 0 counts them in <ProcRoot>/stat.
	CPUs int

	now  func() time.Time
	prev processSample
	have bool
}

// processSample is one reading of a process's CPU time.
type processSample struct {
	pid   int
	times procStat
	at    time.Time
}

// Busy returns the process's CPU time since the previous call as a fraction
// (0..1) of all the host's CPUs: one busy core on a 2-CPU host is 0.5. The
// first call, and the first after the process changed (a new PID, or the
// same PID reused by a new process), return ErrNoData.
func (p *ProcessCPU) Busy(ctx context.Context) (float64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	cur, err := p.read()
	if err != nil {
		p.have = false
		return 0, err
	}
	cpus, err := cpuCount(p.ProcRoot, p.CPUs)
	if err != nil {
		return 0, err
	}

	prev, had := p.prev, p.have
	wall := cur.at.Sub(prev.at)
	same := had && cur.pid == prev.pid && cur.times.startTime == prev.times.startTime
	if same && wall <= 0 {
		return 0, ErrNoData // no time has passed: keep the baseline
	}
	p.prev, p.have = cur, true
	if !same || cur.times.ticks() < prev.times.ticks() {
		return 0, ErrNoData
	}
	usedSeconds := float64(cur.times.ticks()-prev.times.ticks()) / userHZ
	return min(max(usedSeconds/(wall.Seconds()*float64(cpus)), 0), 1), nil
}

// read takes one sample of the watched process.
func (p *ProcessCPU) read() (processSample, error) {
	pid, err := p.pid()
	if err != nil {
		return processSample{}, err
	}
	path := filepath.Join(orDefault(p.ProcRoot, defaultProcRoot), strconv.Itoa(pid), "stat")
	b, err := os.ReadFile(path)
	now := time.Now
	if p.now != nil {
		now = p.now
	}
	at := now()
	if err != nil {
		return processSample{}, fmt.Errorf("reading CPU time of %s: %w", p.describe(pid), err)
	}
	times, err := parseProcStat(string(b))
	if err != nil {
		return processSample{}, fmt.Errorf("reading CPU time of %s: %w", p.describe(pid), err)
	}
	return processSample{pid: pid, times: times, at: at}, nil
}

// pid is the process to watch now.
func (p *ProcessCPU) pid() (int, error) {
	if p.PIDFile == "" {
		if p.PID <= 0 {
			return 0, errors.New("process CPU: neither a PID nor a PID file is set")
		}
		return p.PID, nil
	}
	b, err := os.ReadFile(p.PIDFile)
	if err != nil {
		return 0, fmt.Errorf("reading PID file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("PID file %s holds %q, want a process ID", p.PIDFile, strings.TrimSpace(string(b)))
	}
	return pid, nil
}

// describe names the watched process in errors.
func (p *ProcessCPU) describe(pid int) string {
	if p.PIDFile != "" {
		return fmt.Sprintf("process %d (from PID file %s)", pid, p.PIDFile)
	}
	return fmt.Sprintf("process %d", pid)
}

// procStat holds the fields hafeed uses from /proc/PID/stat, in clock ticks.
type procStat struct {
	utime, stime uint64
	// startTime tells a process from a later one that reuses its PID.
	startTime uint64
}

// ticks is the process's total CPU time.
func (s procStat) ticks() uint64 { return s.utime + s.stime }

// parseProcStat parses /proc/PID/stat content. The comm field may hold
// spaces and parentheses, so fields are counted from after its last ')'.
func parseProcStat(content string) (procStat, error) {
	closing := strings.LastIndexByte(content, ')')
	if closing < 0 {
		return procStat{}, errors.New("malformed stat: no ')' after the command name")
	}
	// Field 3 (state) is the first after the command name; utime is field
	// 14, stime 15 and starttime 22 (proc_pid_stat(5)).
	fields := strings.Fields(content[closing+1:])
	const utime, stime, startTime = 14 - 3, 15 - 3, 22 - 3
	if len(fields) <= startTime {
		return procStat{}, fmt.Errorf("malformed stat: %d fields after the command name, want at least %d", len(fields), startTime+1)
	}
	var s procStat
	for _, f := range []struct {
		index int
		name  string
		dst   *uint64
	}{{utime, "utime", &s.utime}, {stime, "stime", &s.stime}, {startTime, "starttime", &s.startTime}} {
		n, err := strconv.ParseUint(fields[f.index], 10, 64)
		if err != nil {
			return procStat{}, fmt.Errorf("malformed stat %s %q", f.name, fields[f.index])
		}
		*f.dst = n
	}
	return s, nil
}

// CurrentPID is the PID being watched: PID, or what PIDFile holds now.
func (p *ProcessCPU) CurrentPID() (int, error) { return p.pid() }
