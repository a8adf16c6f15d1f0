package agent

import (
	"context"
	"errors"
	"time"

	"github.com/hafeed/hafeed/metrics"
)

// Sample is one reading of every load source and the policy's verdict.
type Sample struct {
	At       time.Time     `json:"at"`
	Duration time.Duration `json:"duration_ns"`
	Inputs
	Ports      []uint16 `json:"ports"`
	ConnMethod string   `json:"conn_method"`
	// Errors lists sources that failed this time; the score uses the rest.
	Errors []string `json:"errors,omitempty"`
	Decision
}

// Sampler reads the load sources. It is owned by one goroutine.
type Sampler struct {
	conns  *metrics.Conns
	cpu    *metrics.HostCPU
	cpuAvg ewma
	lastAt time.Time
}

// NewSampler builds the samplers the configuration names. agentPort is
// left out of the count when no ports are configured.
func NewSampler(src SourcesConfig, agentPort uint16) *Sampler {
	s := &Sampler{}
	s.SetSources(src, agentPort)
	return s
}

// SetSources changes what is sampled, keeping the CPU history.
func (s *Sampler) SetSources(src SourcesConfig, agentPort uint16) {
	c := &metrics.Conns{Ports: src.Ports}
	if agentPort != 0 {
		c.Exclude = []uint16{agentPort}
	}
	s.conns = c
	switch {
	case src.CPU == "none":
		s.cpu = nil
	case s.cpu == nil:
		s.cpu = &metrics.HostCPU{}
	}
}

// Sample reads every source once and applies the policy.
func (s *Sampler) Sample(ctx context.Context, policy PolicyConfig) Sample {
	start := time.Now()
	out := Sample{At: start}
	if n, err := s.conns.Count(ctx); err != nil {
		out.Errors = append(out.Errors, "connections: "+err.Error())
	} else {
		out.Connections, out.Ports = n.Established, n.Ports
	}
	out.ConnMethod = s.conns.Method()
	var busy float64
	err := metrics.ErrNoData
	if s.cpu != nil {
		busy, err = s.cpu.Busy(ctx)
	} else {
		s.cpuAvg = ewma{}
	}
	switch {
	case errors.Is(err, metrics.ErrNoData):
	case err != nil:
		out.Errors = append(out.Errors, "cpu: "+err.Error())
	default:
		out.CPUBusy = s.cpuAvg.update(busy, start.Sub(s.lastAt), policy.CPUSmoothing)
		out.HaveCPU = true
	}
	if !out.HaveCPU && s.cpuAvg.have {
		out.CPUBusy, out.HaveCPU = s.cpuAvg.value, true // hold the last average
	}
	s.lastAt = start
	out.Decision = Decide(policy, out.Inputs)
	out.Duration = time.Since(start)
	return out
}
