package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is one server or client process.
type child struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{} // closed when the process has been waited for
	err   error         // exit status, once done is closed
}

// event is a progress line from a child, or its exit (kind "exit").
type event struct {
	c    *child
	kind string
	n    int
	msg  string
}

// procs starts children and makes sure every one of them is gone by the
// time kill returns.
type procs struct {
	mu       sync.Mutex
	children []*child
	events   chan event
}

func newProcs() *procs { return &procs{events: make(chan event, 1024)} }

// start runs the benchmark binary itself in the given role.
func (p *procs) start(name, role string, extra []*os.File, args ...string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append([]string{role}, args...)...)
	cmd.ExtraFiles = extra
	cmd.Stderr = os.Stderr
	// Killed with the coordinator even if it is SIGKILLed; the stdin EOF
	// check in the child is the second line of defence.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c := &child{name: name, cmd: cmd, stdin: stdin, done: make(chan struct{})}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p.children = append(p.children, c)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			verb, rest, _ := strings.Cut(sc.Text(), " ")
			ev := event{c: c, kind: verb, msg: rest}
			if n, err := strconv.Atoi(rest); err == nil {
				ev.n = n
			}
			p.events <- ev
		}
		c.err = cmd.Wait()
		close(c.done)
		p.events <- event{c: c, kind: "exit"}
	}()
	return c, nil
}

// kill SIGKILLs every child and waits for them, up to a bound.
func (p *procs) kill() {
	p.mu.Lock()
	children := p.children
	p.children = nil
	p.mu.Unlock()
	for _, c := range children {
		c.stdin.Close()
		_ = c.cmd.Process.Kill()
	}
	// The event channel is not read any more: drain it so that the
	// readers can finish.
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-p.events:
			case <-stop:
				return
			}
		}
	}()
	defer close(stop)
	deadline := time.After(30 * time.Second)
	for _, c := range children {
		select {
		case <-c.done:
		case <-deadline:
			fmt.Fprintf(os.Stderr, "bench-conns: %s (pid %d) did not exit after SIGKILL\n", c.name, c.cmd.Process.Pid)
			return
		}
	}
}

// waitFor reads events until cond says the fleet is where it should be.
// Any error line or unexpected exit fails it.
func (p *procs) waitFor(ctx context.Context, what string, update func(event), cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, context.Cause(ctx))
		case ev := <-p.events:
			switch ev.kind {
			case "error":
				return fmt.Errorf("%s: %s", ev.c.name, ev.msg)
			case "exit":
				return fmt.Errorf("%s exited unexpectedly: %v", ev.c.name, ev.c.err)
			}
			update(ev)
		}
	}
	return nil
}
