package control

import (
	"time"
)

// Status is what `hafeed status` shows.
type Status struct {
	Admin string    `json:"admin"`
	Since time.Time `json:"since"`
	// AdminReason is the operator's note on a drain or maint (--reason).
	AdminReason     string       `json:"admin_reason,omitempty"`
	Reply           string       `json:"reply"`
	AnnouncingReady bool         `json:"announcing_ready"`
	StateError      string       `json:"state_error,omitempty"`
	Warning         string       `json:"warning,omitempty"`
	Sample          *Sample      `json:"sample,omitempty"`
	Peers           []PeerStatus `json:"peers"`
	PID             int          `json:"pid"`
	Version         string       `json:"version"`
	// HAProxy lists the runtime endpoints, Shed the last shedding job and
	// Rebalance the rebalancer's last step.
	HAProxy       []EndpointStatus `json:"haproxy,omitempty"`
	Shed          *ShedStatus      `json:"shed,omitempty"`
	Rebalance     *RebalanceStatus `json:"rebalance,omitempty"`
	StartedAt     time.Time        `json:"started_at"`
	ConfigFile    string           `json:"config_file,omitempty"`
	AgentListen   string           `json:"agent_listen"`
	ControlSocket string           `json:"control_socket"`
	StateFile     string           `json:"state_file"`
	// RestartNeeded lists the configuration keys a reload changed but
	// that take effect only on restart; the values above are those in
	// effect.
	RestartNeeded []string `json:"restart_needed,omitempty"`
	// LocalSample is not the agent's: `hafeed status` takes it itself with
	// its source flags (--ports, ...), or when the agent is not running.
	LocalSample *Sample `json:"local_sample,omitempty"`
	// Lines is how many server lines of each HAProxy point at this host
	// when more than one: the reply's weight is the host's split among
	// them.
	Lines int `json:"lines,omitempty"`
	// SourcePorts are the busiest HAProxy source addresses and their use
	// of their source ports toward this host.
	SourcePorts []SourcePortStatus `json:"source_ports,omitempty"`
}

// Sample is one reading of every load source and the policy's verdict.
type Sample struct {
	At       time.Time     `json:"at"`
	Duration time.Duration `json:"duration_ns"`

	Connections int      `json:"connections"`
	Ports       []uint16 `json:"ports"`
	ConnMethod  string   `json:"conn_method"`
	// Signals are the load signals by name, with their age and last error.
	Signals map[string]SignalStatus `json:"signals"`
	// Errors lists sources that failed this time; the score uses the rest.
	Errors []string `json:"errors,omitempty"`
	Decision
}

// Decision is the policy's verdict on one sample, with its explanation
// (see policy.Decision).
type Decision struct {
	Utilisation float64 `json:"utilisation"`
	Bottleneck  string  `json:"bottleneck"`
	// Capacity is the smoothed capacity estimate in connections.
	Capacity float64  `json:"capacity"`
	Model    ModelFit `json:"model"`
	// WeightPercent is the weight reported; 0 reports none.
	WeightPercent int `json:"weight_percent"`
	// Maxconn is sent when SendMaxconn is set (0 means unlimited).
	Maxconn     int    `json:"maxconn"`
	SendMaxconn bool   `json:"send_maxconn"`
	Reason      string `json:"reason"`
	// SuggestedReference is a reference_capacity that would bring the
	// weight back to 100%, once it has sat out of range for a while.
	SuggestedReference int `json:"suggested_reference,omitempty"`
}

// ModelFit is the load model's estimate at one sample (see
// policy.ModelFit).
type ModelFit struct {
	// Baseline is the utilisation with no connections; Measured says it
	// was measured on this host rather than assumed.
	Baseline float64 `json:"baseline"`
	Measured bool    `json:"baseline_measured"`
	// Cost is the utilisation reference_capacity connections add.
	Cost float64 `json:"cost"`
	// Headroom is the share of the target left for connections.
	Headroom float64 `json:"headroom"`
	// Share is the part of the utilisation the connections cause.
	Share float64 `json:"connection_share"`
}

// SignalStatus is one load signal as the last sample saw it.
type SignalStatus struct {
	// Value is the raw reading (a fraction for cpu, memory, pressure and
	// app; a count for connections).
	Value float64 `json:"value"`
	// Target is the value counted as full load; 0 leaves the signal out.
	Target float64   `json:"target"`
	At     time.Time `json:"at"`
	// Stale is set when the value is older than this sample; it still
	// counts until policy.stale_after.
	Stale bool   `json:"stale,omitempty"`
	Error string `json:"error,omitempty"`
	// Duration is how long the last read took.
	Duration time.Duration `json:"duration_ns"`
}

// PeerStatus is what status shows of an HAProxy that polls the agent.
type PeerStatus struct {
	Addr     string    `json:"addr"`
	LastPoll time.Time `json:"last_poll"`
	Polls    uint64    `json:"polls"`
}

// EndpointStatus is what status shows of one HAProxy runtime endpoint.
type EndpointStatus struct {
	Runtime   string    `json:"runtime"`
	Servers   []string  `json:"servers"`
	PID       int       `json:"pid,omitempty"`
	Applied   string    `json:"applied,omitempty"`
	AppliedAt time.Time `json:"applied_at,omitzero"`
	Error     string    `json:"error,omitempty"`
	ErrorAt   time.Time `json:"error_at,omitzero"`
	// Errors counts failed runtime API calls since the agent started.
	Errors uint64 `json:"errors"`
}

// ShedStatus is what status shows of a shedding job.
type ShedStatus struct {
	// Job numbers the drain's shedding jobs, for stop-shed.
	Job       uint64    `json:"job"`
	Reason    string    `json:"reason"`
	Rate      float64   `json:"rate"`
	Via       string    `json:"via"`
	Started   time.Time `json:"started"`
	Deadline  time.Time `json:"deadline"`
	Min       int       `json:"min"`
	Closed    int       `json:"closed"`
	Active    bool      `json:"active"`
	LastError string    `json:"last_error,omitempty"`
	Ended     string    `json:"ended,omitempty"`
}

// RebalanceStatus is what status shows of the rebalancer.
type RebalanceStatus struct {
	At     time.Time `json:"at"`
	Fair   float64   `json:"fair"`
	Excess float64   `json:"excess"`
	// Kind names why the host sheds or not: filling, under-share,
	// within-margin, gathering-evidence, cooldown, shedding, done or
	// not-in-rotation.
	Kind   string `json:"kind,omitempty"`
	Reason string `json:"reason"`
	Shed   int    `json:"shed_total"`
	Error  string `json:"error,omitempty"`
}

// SourcePortStatus is one HAProxy source address's use of its source ports
// toward one address and port of this host (a server line's).
type SourcePortStatus struct {
	Peer string `json:"peer"`
	// Local is the address and port of this host the connections reach.
	Local       string `json:"local"`
	Connections int    `json:"connections"`
	// Range is its port range, LOW-HIGH, and RangeFrom where hafeed took it.
	Range     string  `json:"range"`
	RangeFrom string  `json:"range_from"`
	Usage     float64 `json:"usage"`
	// Maxconn is what the reply to that source's server lines carries for
	// them; 0 with none, or to lift an earlier one.
	Maxconn int `json:"maxconn,omitempty"`
	// WeightPercent is the weight the reply to that source's lines carries
	// while they are capped, their part of this host's connections, the
	// other lines taking the rest of the host's share; 0: the usual one.
	WeightPercent int `json:"weight_percent,omitempty"`
}
