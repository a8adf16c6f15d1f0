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
)

// Request is one control-socket request: a single JSON line.
type Request struct {
	Command string `json:"command"`
	// ShedRate, with drain, closes the remaining connections at this many
	// per second until Min remain or Timeout passes.
	ShedRate float64       `json:"shed_rate,omitempty"`
	Min      int           `json:"min,omitempty"`
	Timeout  time.Duration `json:"timeout_ns,omitempty"`
}

// Response answers a Request.
type Response struct {
	OK     bool    `json:"ok"`
	Error  string  `json:"error,omitempty"`
	Status *Status `json:"status,omitempty"`
}

const (
	// MaxRequestBytes bounds a request line.
	MaxRequestBytes   = 64 * 1024
	controlTimeout    = 10 * time.Second
	maxControlClients = 16
)

// ErrAgentUnreachable means no agent answers on the control socket.
var ErrAgentUnreachable = errors.New("agent not reachable")

// ErrAlreadyRunning means another agent holds the control socket.
var ErrAlreadyRunning = errors.New("another hafeed agent is running")
