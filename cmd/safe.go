package cmd

import (
	"maps"

	"github.com/hafeed/hafeed/agent/control"
	"github.com/hafeed/hafeed/internal/termsafe"
)

// safeStatus is a copy of st fit for a terminal: every text that HAProxy,
// the application or a file could have put there (runtime replies and
// errors, server names, the app endpoint's errors) loses its escape
// sequences and control characters. JSON output needs none of this: its
// encoder escapes control characters.
func safeStatus(st *control.Status) *control.Status {
	if st == nil {
		return nil
	}
	out := *st
	line := termsafe.Line
	out.Reply, out.StateError, out.Warning = line(st.Reply), line(st.StateError), line(st.Warning)
	out.AdminReason = line(st.AdminReason)
	out.ConfigFile, out.StateFile, out.ControlSocket = line(st.ConfigFile), line(st.StateFile), line(st.ControlSocket)
	out.Version, out.AgentListen = line(st.Version), line(st.AgentListen)
	out.HAProxy = make([]control.EndpointStatus, len(st.HAProxy))
	for i, e := range st.HAProxy {
		e.Runtime, e.Applied, e.Error = line(e.Runtime), line(e.Applied), line(e.Error)
		e.Servers = lines(e.Servers)
		out.HAProxy[i] = e
	}
	if st.Shed != nil {
		s := *st.Shed
		s.Reason, s.Via, s.LastError, s.Ended = line(s.Reason), line(s.Via), line(s.LastError), line(s.Ended)
		out.Shed = &s
	}
	if st.Rebalance != nil {
		r := *st.Rebalance
		r.Reason, r.Error = line(r.Reason), line(r.Error)
		out.Rebalance = &r
	}
	out.Sample = safeSample(st.Sample)
	out.LocalSample = safeSample(st.LocalSample)
	out.RestartNeeded = lines(st.RestartNeeded)
	return &out
}

// safeSample is safeStatus for a sample: the app endpoint's errors in
// particular.
func safeSample(in *control.Sample) *control.Sample {
	if in == nil {
		return nil
	}
	line := termsafe.Line
	s := *in
	s.Errors = lines(s.Errors)
	s.Reason, s.Bottleneck, s.ConnMethod = line(s.Reason), line(s.Bottleneck), line(s.ConnMethod)
	s.Signals = maps.Clone(s.Signals)
	for name, sig := range s.Signals {
		sig.Error = line(sig.Error)
		s.Signals[name] = sig
	}
	return &s
}

func lines(in []string) []string {
	if in == nil {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = termsafe.Line(s)
	}
	return out
}
