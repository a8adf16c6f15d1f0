package control

import (
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"
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
	// CommandFleet reads the backend's figures for autoscalers
	// (Response.Fleet); it needs a runtime endpoint.
	CommandFleet = "fleet"
)

// Request is one control-socket request: a single JSON line.
type Request struct {
	Command string `json:"command"`
	// ShedRate, with drain, closes the remaining connections at this many
	// per second until Min remain or Timeout passes.
	ShedRate float64       `json:"shed_rate,omitempty"`
	Min      int           `json:"min,omitempty"`
	Timeout  time.Duration `json:"timeout_ns,omitempty"`
	// Reason, with drain or maint, is the operator's note on the change,
	// kept with the state and shown by status (CheckReason).
	Reason string `json:"reason,omitempty"`
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
	Busy bool `json:"busy,omitempty"`
	// Config says the request failed for want of something in the agent's
	// configuration: nothing changed, and only a change there (and a
	// reload) lets the same request succeed.
	Config bool    `json:"config,omitempty"`
	Status *Status `json:"status,omitempty"`
	Fleet  *Fleet  `json:"fleet,omitempty"`
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

// ErrAgentConfig marks an error the agent's configuration causes, such as
// shedding with no way to close connections (Response.Config).
var ErrAgentConfig = errors.New("the agent's configuration does not allow it")

// ErrBusy means the agent stayed busy until the caller's deadline: the
// request was never started, so nothing changed.
var ErrBusy = errors.New("agent busy")

// MaxReasonBytes bounds Request.Reason: a note for the log and status.
const MaxReasonBytes = 200

// CheckReason checks an operator's note on a drain or maint: one line of
// text in UTF-8, at most MaxReasonBytes.
func CheckReason(reason string) error {
	if len(reason) > MaxReasonBytes {
		return fmt.Errorf("the reason is %d bytes, more than the %d it may have: keep it to a short note, e.g. \"deploy v1.4 (ticket 123)\"", len(reason), MaxReasonBytes)
	}
	if !utf8.ValidString(reason) {
		return errors.New("the reason is not UTF-8 text")
	}
	for _, r := range reason {
		if unicode.IsControl(r) {
			return fmt.Errorf("the reason contains the control character %q: give one line of text", r)
		}
	}
	return nil
}
