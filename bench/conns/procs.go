package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/hafeed/hafeed/internal/supervise"
)

// event is a progress line from a child, or its exit (kind "exit").
type event struct {
	c    *supervise.Child
	kind string
	n    int
	msg  string
}

// procs starts the server and client children, which log to stderr, and
// turns their progress lines into events.
type procs struct {
	sup    *supervise.Supervisor
	events chan event
}

func newProcs() *procs { return &procs{sup: supervise.New(""), events: make(chan event, 1024)} }

// start runs the benchmark binary itself in the given role.
func (p *procs) start(name, role string, extra []*os.File, args ...string) (*supervise.Child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append([]string{role}, args...)...)
	cmd.ExtraFiles = extra
	stdout, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = w
	c, err := p.sup.Start(name, cmd)
	w.Close()
	if err != nil {
		stdout.Close()
		return nil, err
	}
	go func() {
		defer stdout.Close()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			verb, rest, _ := strings.Cut(sc.Text(), " ")
			ev := event{c: c, kind: verb, msg: rest}
			if n, err := strconv.Atoi(rest); err == nil {
				ev.n = n
			}
			p.events <- ev
		}
		<-c.Done()
		p.events <- event{c: c, kind: "exit"}
	}()
	return c, nil
}

// kill stops every child and waits for them, up to a bound.
func (p *procs) kill() {
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
	if err := p.sup.StopAll(); err != nil {
		logf("%v", err)
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
				return fmt.Errorf("%s: %s", ev.c.Name, ev.msg)
			case "exit":
				return fmt.Errorf("%s exited unexpectedly: %v", ev.c.Name, ev.c.Err())
			}
			update(ev)
		}
	}
	return nil
}
