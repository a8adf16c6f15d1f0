package main

// The two child roles. A server accepts from the listening socket it
// inherits as fd 3 and holds what it accepted; a client dials the port from
// its own 127.0.0.x source address and holds what it dialled. Both report
// progress as lines on stdout ("ready", "accepted N", "dialed N", "done N",
// "error ...") and exit when their stdin reaches EOF, which happens when the
// coordinator exits for any reason, including SIGKILL.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	roleServer = "__server"
	roleClient = "__client"
)

// held keeps the sockets reachable for the life of the process: a net.Conn
// that the garbage collector frees has its descriptor closed.
var (
	heldMu sync.Mutex
	held   []net.Conn
)

func hold(c net.Conn) {
	heldMu.Lock()
	held = append(held, c)
	heldMu.Unlock()
}

// out serialises the progress lines.
var outMu sync.Mutex

func say(format string, args ...any) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Fprintf(os.Stdout, format+"\n", args...)
}

// untilStdinEOF closes the returned channel when the coordinator goes away.
func untilStdinEOF() <-chan struct{} {
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(done)
	}()
	return done
}

// reportEvery prints "<verb> N" whenever n changes, until stop is closed.
func reportEvery(verb string, n *atomic.Int64, stop <-chan struct{}) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	last := int64(-1)
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if v := n.Load(); v != last {
				say("%s %d", verb, v)
				last = v
			}
		}
	}
}

func runServer(args []string) int {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	limit := fs.Int("cap", 19000, "accept at most this many connections, then leave the rest to the other servers")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if _, err := raiseNoFile(); err != nil {
		say("error raising the fd limit: %v", err)
		return 1
	}
	gone := untilStdinEOF()
	f := os.NewFile(3, "listener")
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		say("error using the inherited listener: %v", err)
		return 1
	}
	say("ready")
	var n atomic.Int64
	stop := make(chan struct{})
	go reportEvery("accepted", &n, stop)
	go func() {
		<-gone
		os.Exit(0)
	}()
	for int(n.Load()) < *limit {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EINTR) {
				continue
			}
			say("error accepting: %v", err)
			return 1
		}
		quiet(c)
		hold(c)
		n.Add(1)
	}
	// At the cap: stop accepting (the other servers share the socket).
	ln.Close()
	<-gone
	close(stop)
	return 0
}

func runClient(args []string) int {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	src := fs.String("src", "127.0.0.10", "source address")
	dst := fs.String("dst", "", "address to dial")
	total := fs.Int("n", 0, "connections to open")
	workers := fs.Int("c", 32, "dials in flight")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if _, err := raiseNoFile(); err != nil {
		say("error raising the fd limit: %v", err)
		return 1
	}
	gone := untilStdinEOF()
	go func() {
		<-gone
		os.Exit(0)
	}()
	d := net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP(*src)},
		Timeout:   10 * time.Second,
		KeepAlive: -1,
		// Let connect() pick the source port against the full 4-tuple
		// instead of bind() reserving one per address.
		Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
			})
			return errors.Join(err, serr)
		},
	}
	var n, next atomic.Int64
	stop := make(chan struct{})
	go reportEvery("dialed", &n, stop)
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	for range *workers {
		wg.Go(func() {
			for next.Add(1) <= int64(*total) {
				c, err := dialRetry(&d, *dst)
				if err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
					return
				}
				quiet(c)
				hold(c)
				n.Add(1)
			}
		})
	}
	wg.Wait()
	close(stop)
	if firstErr != nil {
		say("error dialing %s from %s after %d connections: %v", *dst, *src, n.Load(), firstErr)
		return 1
	}
	say("done %d", n.Load())
	<-gone
	return 0
}

// quiet makes a held connection cost nothing while idle and nothing after:
// no keepalive probes (Go enables them by default, which would be 13,000
// probes a second at 100,000 connections, all kernel work on this host), and
// a reset instead of a close when the process dies, so that no TIME-WAIT
// sockets are left behind to slow down the next run's counts.
func quiet(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetKeepAlive(false)
		_ = tc.SetLinger(0)
	}
}

// dialRetry dials, retrying the errors a burst of connects can cause.
func dialRetry(d *net.Dialer, addr string) (net.Conn, error) {
	backoff := 5 * time.Millisecond
	var err error
	for range 30 {
		var c net.Conn
		c, err = d.DialContext(context.Background(), "tcp4", addr)
		if err == nil {
			return c, nil
		}
		if !transient(err) {
			return nil, err
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 500*time.Millisecond)
	}
	return nil, err
}

func transient(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []error{syscall.EADDRNOTAVAIL, syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ETIMEDOUT, syscall.EAGAIN, syscall.EINTR, syscall.ENOBUFS} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// raiseNoFile raises the soft RLIMIT_NOFILE to the hard limit and returns it.
func raiseNoFile() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, err
		}
	}
	return rl.Cur, nil
}
