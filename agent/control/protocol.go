package control

import (
	"errors"
	"time"
)

// Control commands.
const (
	CommandStatus = "status"
	CommandReady  = "ready"
	CommandDrain  = "drain"
	CommandMaint  = "maint"
	// CommandStopShed stops the drain's shedding job named by Request.Job
	// (0: whichever runs) and leaves the admin state as it is.
	CommandStopShed = "stop-shed"
)

// Request is one control-socket request: a single JSON line.
type Request struct {
	Command string `json:"command"`
	// ShedRate, with drain, closes the remaining connections at this many
	// per second until Min remain or Timeout passes.
	ShedRate float64       `json:"shed_rate,omitempty"`
	Min      int           `json:"min,omitempty"`
	Timeout  time.Duration `json:"timeout_ns,omitempty"`
	// Job, with stop-shed, is the ShedStatus.Job to stop.
	Job uint64 `json:"job,omitempty"`
	// Within is how long after sending the caller stops waiting for the
	// reply, less the time the reply needs to reach it: the agent does not
	// start a request past it and bounds its work by it, so a change is
	// applied only when the caller hears that it was. The agent counts it
	// from receiving the request on its monotonic clock, so that a step of
	// either side's wall clock does not change it.
	Within time.Duration `json:"within_ns,omitempty"`
	// Deadline is the same limit on the caller's wall clock, for agents
	// older than Within; an agent reads it only when Within is missing.
	// Neither: DefaultDeadline.
	Deadline time.Time `json:"deadline,omitzero"`
}

// Response answers a Request.
type Response struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Busy says the agent did not start the request because it was busy:
	// nothing changed, and the same request may be sent again.
	Busy   bool    `json:"busy,omitempty"`
	Status *Status `json:"status,omitempty"`
}

const (
	// MaxRequestBytes bounds a request line.
	MaxRequestBytes = 64 * 1024
	// DefaultDeadline bounds a request that carries no deadline.
	DefaultDeadline = 10 * time.Second
	// requestReadTimeout bounds the wait for the request line: a client
	// sends it as soon as it connects.
	requestReadTimeout = 2 * time.Second
	// replyAllowance is the share of a caller's time kept for the reply
	// to reach it after the agent's work ends (at most maxReplyAllowance):
	// building the status may wait for a runtime endpoint's lock.
	replyAllowance    = 0.3
	maxReplyAllowance = 3 * time.Second
	// maxControlClients bounds the requests answered at once.
	maxControlClients = 16
	// maxPendingReads bounds the connections whose request is being read;
	// past it, one idle for idleGrace makes way for a new one.
	maxPendingReads = 64
	idleGrace       = 100 * time.Millisecond
)

// ErrAgentUnreachable means no agent answers on the control socket.
var ErrAgentUnreachable = errors.New("agent not reachable")

// ErrAlreadyRunning means another agent holds the control socket.
var ErrAlreadyRunning = errors.New("another hafeed agent is running")

// ErrBusy means the agent stayed busy until the caller's deadline: the
// request was never started, so nothing changed.
var ErrBusy = errors.New("agent busy")
