package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long a child has between SIGTERM and SIGKILL.
const stopGrace = 5 * time.Second

// supervisor starts child processes, each in its own process group, and
// stops all of them, however the program ends.
type supervisor struct {
	mu       sync.Mutex
	logDir   string
	children map[*child]bool
}

// child is one started process (its group included).
type child struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	// stdin is the write end of the child's stdin, closed to tell a role
	// of this program to stop; it also closes if this process dies.
	stdin *os.File
	// done is closed once the process has exited; err is why.
	done chan struct{}
	err  error
}

func newSupervisor(logDir string) *supervisor {
	return &supervisor{logDir: logDir, children: map[*child]bool{}}
}

// setLogDir is where the logs of the children started next go.
func (s *supervisor) setLogDir(dir string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logDir = dir
}

// start runs cmd in a new process group with its stderr (and stdout, unless
// the caller took it) in logDir/name.log. A child also gets SIGTERM when
// this process dies, and the roles of this program exit when their stdin
// closes, so that nothing outlives a killed benchmark.
func (s *supervisor) start(name string, cmd *exec.Cmd) (*child, error) {
	s.mu.Lock()
	dir := s.logDir
	s.mu.Unlock()
	log, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stderr = log
	if cmd.Stdout == nil {
		cmd.Stdout = log
	}
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		log.Close()
		return nil, err
	}
	cmd.Stdin = stdinR
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	err = cmd.Start()
	stdinR.Close()
	if err != nil {
		log.Close()
		stdinW.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, log: log, stdin: stdinW, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	s.mu.Lock()
	s.children[c] = true
	s.mu.Unlock()
	return c, nil
}

// stop ends one child: SIGTERM to its group, SIGKILL after stopGrace.
func (s *supervisor) stop(c *child) {
	c.stop()
	s.mu.Lock()
	delete(s.children, c)
	s.mu.Unlock()
}

// stopAll stops every child still running, all at once.
func (s *supervisor) stopAll() {
	s.mu.Lock()
	var all []*child
	for c := range s.children {
		all = append(all, c)
	}
	s.children = map[*child]bool{}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range all {
		wg.Go(c.stop)
	}
	wg.Wait()
}

// count is the number of children still supervised.
func (s *supervisor) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.children)
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// exited reports whether the process has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *child) stop() {
	defer c.log.Close()
	c.stdin.Close()
	pgid := c.pid()
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(stopGrace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-c.done
	}
	// Whatever the group leader left behind (an HAProxy worker) goes too.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// tail is the end of the child's log, for error messages.
func (c *child) tail() string {
	b, _ := os.ReadFile(c.log.Name())
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
