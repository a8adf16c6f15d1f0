package supervise

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

const (
	// defaultGrace is how long a child has between SIGTERM and SIGKILL.
	defaultGrace = 5 * time.Second
	// killWait bounds the wait for a child to be reaped after SIGKILL.
	killWait = 30 * time.Second
)

// Supervisor starts child processes, each in its own process group, and
// stops them.
type Supervisor struct {
	// grace is how long a child has between SIGTERM and SIGKILL.
	grace time.Duration

	mu       sync.Mutex // guards the fields below
	logDir   string
	children map[*Child]bool
}

// Child is one started process (its group included).
type Child struct {
	// Name names the child in logs and errors.
	Name string
	cmd  *exec.Cmd
	// grace is the supervisor's, when the child started.
	grace time.Duration
	// log is the child's log file; nil when its output goes to this
	// process's stderr.
	log *os.File
	// stdin is the write end of the child's stdin, closed to tell a child
	// that watches it to stop; it also closes if this process dies.
	stdin *os.File
	// done is closed once the process has exited; err is why.
	done     chan struct{}
	err      error
	stopOnce sync.Once
	stopErr  error
}

// New returns a supervisor whose children log to files in logDir, or to
// this process's stderr when logDir is empty.
func New(logDir string) *Supervisor {
	return &Supervisor{grace: defaultGrace, logDir: logDir, children: map[*Child]bool{}}
}

// SetLogDir is where the logs of the children started next go.
func (s *Supervisor) SetLogDir(dir string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logDir = dir
}

// Start runs cmd in a new process group with its stderr (and stdout, unless
// the caller took it) in logDir/name.log, or this process's stderr. A child
// gets SIGTERM when this process dies, and its stdin closes then too, so
// that a child that exits on EOF does not outlive a killed program.
func (s *Supervisor) Start(name string, cmd *exec.Cmd) (*Child, error) {
	s.mu.Lock()
	dir := s.logDir
	s.mu.Unlock()
	c := &Child{Name: name, cmd: cmd, grace: s.grace, done: make(chan struct{})}
	out := os.Stderr
	if dir != "" {
		log, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		c.log, out = log, log
	}
	cmd.Stderr = out
	if cmd.Stdout == nil {
		cmd.Stdout = out
	}
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		c.closeLog()
		return nil, err
	}
	cmd.Stdin = stdinR
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	err = cmd.Start()
	stdinR.Close()
	if err != nil {
		c.closeLog()
		stdinW.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c.stdin = stdinW
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	s.mu.Lock()
	s.children[c] = true
	s.mu.Unlock()
	return c, nil
}

// Stop ends one child: SIGTERM to its group, SIGKILL after a grace period.
// It fails if the child was not reaped within a bound after SIGKILL.
func (s *Supervisor) Stop(c *Child) error {
	err := c.stop()
	s.mu.Lock()
	delete(s.children, c)
	s.mu.Unlock()
	return err
}

// StopAll stops every child still running, all at once.
func (s *Supervisor) StopAll() error {
	s.mu.Lock()
	var all []*Child
	for c := range s.children {
		all = append(all, c)
	}
	s.children = map[*Child]bool{}
	s.mu.Unlock()
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i, c := range all {
		wg.Go(func() { errs[i] = c.stop() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Running is the number of children started and not stopped.
func (s *Supervisor) Running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.children)
}

// PID is the child's process id, also its process group's.
func (c *Child) PID() int { return c.cmd.Process.Pid }

// Signal sends sig to the child (not its group).
func (c *Child) Signal(sig os.Signal) error { return c.cmd.Process.Signal(sig) }

// Done is closed once the process has exited.
func (c *Child) Done() <-chan struct{} { return c.done }

// Err is how the process exited; it waits for the exit.
func (c *Child) Err() error {
	<-c.done
	return c.err
}

// Exited reports whether the process has ended.
func (c *Child) Exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// LogPath is the child's log file, "" when it logs to stderr.
func (c *Child) LogPath() string {
	if c.log == nil {
		return ""
	}
	return c.log.Name()
}

// Tail is the end of the child's log, for error messages.
func (c *Child) Tail() string {
	if c.log == nil {
		return ""
	}
	b, _ := os.ReadFile(c.log.Name())
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// stop ends the child once; a second call waits for the first.
func (c *Child) stop() error {
	c.stopOnce.Do(func() {
		defer c.closeLog()
		c.stdin.Close()
		pgid := c.PID()
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(c.grace):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			select {
			case <-c.done:
			case <-time.After(killWait):
				c.stopErr = fmt.Errorf("%s (pid %d) did not exit within %v of SIGKILL", c.Name, pgid, killWait)
				return
			}
		}
		// Whatever the group leader left behind (an HAProxy worker) goes too.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	})
	return c.stopErr
}

func (c *Child) closeLog() {
	if c.log != nil {
		c.log.Close()
	}
}
