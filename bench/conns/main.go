package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hafeed/hafeed/bench/internal/procstat"
	"github.com/hafeed/hafeed/internal/hafeedbin"
	"github.com/hafeed/hafeed/internal/supervise"
)

type options struct {
	conns        int
	perProc      int
	dialers      int
	port         int
	reps         int
	gopsutilReps int
	settle       time.Duration
	window       time.Duration
	timeout      time.Duration
	twWait       time.Duration
	hafeedBin    string
	noAgent      bool
	noGopsutil   bool
	json         bool
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case roleServer:
			os.Exit(runServer(os.Args[2:]))
		case roleClient:
			os.Exit(runClient(os.Args[2:]))
		}
	}
	os.Exit(run())
}

func run() int {
	var o options
	flag.IntVar(&o.conns, "conns", 100000, "established connections to open")
	flag.IntVar(&o.perProc, "per-proc", 15000, "connections per server or client process (a process may hold at most RLIMIT_NOFILE descriptors)")
	flag.IntVar(&o.dialers, "dialers", 32, "dials in flight per client process")
	flag.IntVar(&o.port, "port", 0, "server port (default: a free port below the ephemeral range)")
	flag.IntVar(&o.reps, "reps", 20, "timed counts for hafeed and for ss")
	flag.IntVar(&o.gopsutilReps, "gopsutil-reps", 3, "timed counts for gopsutil (slow)")
	flag.DurationVar(&o.settle, "settle", 5*time.Second, "agent: time to let it settle before measuring")
	flag.DurationVar(&o.window, "window", 30*time.Second, "agent: measurement window for CPU and RSS")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "bound on the whole run")
	flag.DurationVar(&o.twWait, "tw-wait", 75*time.Second, "wait up to this long for TIME-WAIT sockets left by an earlier run to expire (every count walks them)")
	flag.StringVar(&o.hafeedBin, "hafeed", "", "hafeed binary for the agent measurement (default: go build ./cmd/hafeed into a temp dir)")
	flag.BoolVar(&o.noAgent, "no-agent", false, "skip the agent CPU/RSS measurement")
	flag.BoolVar(&o.noGopsutil, "no-gopsutil", false, "skip gopsutil")
	flag.BoolVar(&o.json, "json", false, "print the results as JSON instead of markdown")
	flag.Parse()
	if flag.NArg() > 0 || o.conns < 1 || o.perProc < 1 || o.reps < 1 || o.gopsutilReps < 1 || o.dialers < 1 {
		flag.Usage()
		return 2
	}

	tctx, cancel := context.WithTimeoutCause(context.Background(), o.timeout, fmt.Errorf("run took longer than -timeout %s", o.timeout))
	defer cancel()
	ctx, stop := signal.NotifyContext(tctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	res, err := bench(ctx, o)
	if err != nil {
		if ctx.Err() != nil && tctx.Err() == nil {
			err = fmt.Errorf("interrupted: %w", err)
		}
		fmt.Fprintf(os.Stderr, "bench-conns: %v\n", err)
		return 1
	}
	if o.json {
		err = res.writeJSON(os.Stdout)
	} else {
		err = res.writeMarkdown(os.Stdout)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench-conns: %v\n", err)
		return 1
	}
	if bad := res.countMismatches(); bad != "" {
		fmt.Fprintf(os.Stderr, "bench-conns: wrong counts: %s\n", bad)
		return 1
	}
	return 0
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench-conns: "+format+"\n", args...)
}

// bench sets up the connections, measures, and tears everything down.
func bench(ctx context.Context, o options) (*results, error) {
	res := &results{Conns: o.conns, Machine: machine()}
	nofile, err := raiseNoFile()
	if err != nil {
		return nil, fmt.Errorf("raising RLIMIT_NOFILE: %w", err)
	}
	res.NoFile = nofile
	res.Somaxconn = procstat.ReadInt("/proc/sys/net/core/somaxconn")
	if res.Somaxconn > 0 && res.Somaxconn < 1024 {
		logf("warning: net.core.somaxconn is %d; the listen backlog is capped there and dials may need retries", res.Somaxconn)
	}

	// The agent's binary and files, built first so that a failing build
	// fails the run before the long part.
	dir, err := os.MkdirTemp("", "bench-conns-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := o.hafeedBin
	if bin == "" && !o.noAgent {
		bin = filepath.Join(dir, "hafeed")
		logf("building hafeed (go build ./cmd/hafeed)")
		err := hafeedbin.Build(ctx, bin)
		if errors.Is(err, hafeedbin.ErrNoModule) {
			return nil, fmt.Errorf("%w, or give -hafeed PATH", err)
		}
		if err != nil {
			return nil, err
		}
	}

	if err := procstat.WaitTimeWait(ctx, o.twWait, logf); err != nil {
		return nil, err
	}

	ln, port, err := listen(o.port)
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	res.Port = port
	lnFile, err := ln.(*net.TCPListener).File()
	if err != nil {
		return nil, err
	}
	defer lnFile.Close()

	p := newProcs()
	defer func() {
		t := time.Now()
		p.kill()
		logf("children killed and reaped in %s", time.Since(t).Round(time.Millisecond))
	}()

	if err := openConns(ctx, o, p, lnFile, port, res); err != nil {
		return nil, err
	}
	res.SockstatBefore = procstat.ReadSockstat()
	cpu := procstat.ReadHostCPU()
	if err := measureCounters(ctx, o, port, res); err != nil {
		return nil, err
	}
	res.HostBusyTimings = cpu.BusySince()
	if !o.noAgent {
		a, err := measureAgent(ctx, o, bin, dir, port)
		if err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		res.Agent = a
	}
	return res, nil
}

// listen opens the shared listening socket on 127.0.0.1. The port is kept
// below the ephemeral range so no client's source port can equal it (a
// client socket 127.0.0.11:P would match `sport = :P` too).
func listen(port int) (net.Listener, int, error) {
	if port != 0 {
		ln, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		return ln, port, err
	}
	lo := 32768
	if f := strings.Fields(procstat.ReadString("/proc/sys/net/ipv4/ip_local_port_range")); len(f) == 2 {
		if n, err := strconv.Atoi(f[0]); err == nil {
			lo = n
		}
	}
	if lo <= 10000 {
		return nil, 0, fmt.Errorf("the ephemeral port range starts at %d: give -port outside it", lo)
	}
	var err error
	for range 100 {
		port = 10000 + rand.IntN(lo-10000)
		var ln net.Listener
		ln, err = net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			return ln, port, nil
		}
	}
	return nil, 0, fmt.Errorf("no free port below %d: %w", lo, err)
}

// openConns starts the servers and clients and waits until every
// connection is established and accepted.
func openConns(ctx context.Context, o options, p *procs, lnFile *os.File, port int, res *results) error {
	n := (o.conns + o.perProc - 1) / o.perProc
	if n > 200 {
		return errors.New("too many processes: raise -per-proc")
	}
	res.Servers, res.Clients = n, n
	// Each server may take more than its share (they race on one accept
	// queue) but never more than its descriptors allow.
	srvCap := max(int(res.NoFile)-500, o.perProc)
	start := time.Now()
	ready := 0
	for i := range n {
		if _, err := p.start(fmt.Sprintf("server %d", i), roleServer, []*os.File{lnFile}, "-cap", strconv.Itoa(srvCap)); err != nil {
			return err
		}
	}
	if err := p.waitFor(ctx, "servers to start", func(ev event) {
		if ev.kind == "ready" {
			ready++
		}
	}, func() bool { return ready == n }); err != nil {
		return err
	}
	dst := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	accepted := map[*supervise.Child]int{}
	dialed := map[*supervise.Child]int{}
	clientsDone := 0
	for i := range n {
		share := o.conns / n
		if i < o.conns%n {
			share++
		}
		src := fmt.Sprintf("127.0.0.%d", 10+i)
		res.Sources = append(res.Sources, src)
		if _, err := p.start("client "+src, roleClient, nil, "-src", src, "-dst", dst, "-n", strconv.Itoa(share), "-c", strconv.Itoa(o.dialers)); err != nil {
			return err
		}
	}
	logf("opening %d connections to %s: %d server and %d client processes, sources %s..%s, somaxconn %d, RLIMIT_NOFILE %d",
		o.conns, dst, n, n, res.Sources[0], res.Sources[len(res.Sources)-1], res.Somaxconn, res.NoFile)
	sum := func(m map[*supervise.Child]int) int {
		t := 0
		for _, v := range m {
			t += v
		}
		return t
	}
	lastLog := time.Now()
	err := p.waitFor(ctx, "connections", func(ev event) {
		switch ev.kind {
		case "accepted":
			accepted[ev.c] = ev.n
		case "dialed":
			dialed[ev.c] = ev.n
		case "done":
			dialed[ev.c] = ev.n
			clientsDone++
		}
		if time.Since(lastLog) > 5*time.Second {
			logf("  %d dialled, %d accepted", sum(dialed), sum(accepted))
			lastLog = time.Now()
		}
	}, func() bool { return clientsDone == n && sum(accepted) == o.conns })
	if err != nil {
		return fmt.Errorf("%w (%d dialled, %d accepted)", err, sum(dialed), sum(accepted))
	}
	res.SetupSeconds = time.Since(start).Seconds()
	logf("%d connections established and accepted in %.1f s", o.conns, res.SetupSeconds)
	return nil
}

func machine() machineInfo {
	m := machineInfo{NumCPU: runtime.NumCPU(), GoBuild: runtime.Version()}
	m.Kernel = strings.TrimSpace(procstat.ReadString("/proc/sys/kernel/osrelease"))
	return m
}
