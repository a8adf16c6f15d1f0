package control

import (
	"github.com/hafeed/hafeed/agent/policy"
	"github.com/hafeed/hafeed/agent/rebalance"
	"github.com/hafeed/hafeed/agent/runtime"
	"github.com/hafeed/hafeed/agent/sampler"
	"github.com/hafeed/hafeed/agent/shed"
)

// This file maps the agent's internal types to the wire format of
// `status --json`, whose field names stay as they are.

// EndpointStatusOf is the wire form of an endpoint's status.
func EndpointStatusOf(e runtime.EndpointStatus) EndpointStatus {
	return EndpointStatus{
		Runtime: e.Runtime, Servers: e.Servers, PID: e.PID,
		Applied: e.Applied, AppliedAt: e.AppliedAt,
		Error: e.Error, ErrorAt: e.ErrorAt, Errors: e.Errors,
	}
}

// ShedStatusOf is the wire form of a shedding job's status.
func ShedStatusOf(j shed.JobStatus) ShedStatus {
	return ShedStatus{
		Job: j.Job, Reason: j.Reason, Rate: j.Rate, Via: j.Via,
		Started: j.Started, Deadline: j.Deadline, Min: j.Min, Closed: j.Closed,
		Active: j.Active, LastError: j.LastError, Ended: j.Ended,
	}
}

// RebalanceStatusOf is the wire form of the rebalancer's last step.
func RebalanceStatusOf(r rebalance.Status) RebalanceStatus {
	return RebalanceStatus{At: r.At, Fair: r.Fair, Excess: r.Excess, Kind: r.Kind, Reason: r.Reason, Shed: r.Shed, Error: r.Error}
}

// SampleOf is the wire form of a sample.
func SampleOf(s sampler.Sample) Sample {
	out := Sample{
		At: s.At, Duration: s.Duration,
		Connections: s.Connections, Ports: s.Ports, ConnMethod: s.ConnMethod,
		Errors: s.Errors, Decision: decisionOf(s.Decision),
	}
	if s.Signals != nil {
		out.Signals = make(map[string]SignalStatus, len(s.Signals))
		for name, sig := range s.Signals {
			out.Signals[name] = SignalStatus{
				Value: sig.Value, Target: sig.Target, At: sig.At,
				Stale: sig.Stale, Error: sig.Error, Duration: sig.Duration,
			}
		}
	}
	return out
}

// decisionOf is the wire form of the policy's verdict.
func decisionOf(d policy.Decision) Decision {
	m := d.Model
	return Decision{
		Utilisation: d.Utilisation, Bottleneck: d.Bottleneck, Capacity: d.Capacity,
		Model:         ModelFit{Baseline: m.Baseline, Measured: m.Measured, Cost: m.Cost, Headroom: m.Headroom, Share: m.Share},
		WeightPercent: d.WeightPercent, Maxconn: d.Maxconn, SendMaxconn: d.SendMaxconn,
		Reason: d.Reason, SuggestedReference: d.SuggestedReference,
	}
}
