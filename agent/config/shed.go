package config

import (
	"errors"
	"fmt"
)

// ErrCannotShed marks a configuration with no way to close connections.
var ErrCannotShed = errors.New("nothing can close connections to move them off this host")

// ShedWay says how this configuration closes connections to move them
// (`hafeed drain --wait --shed-rate`, which the packaged drop-in
// hafeed-drain.conf runs, and rebalancing), or, wrapping ErrCannotShed,
// what to configure when it has no way. It is the one place that decides:
// the agent builds its closer from the same answer, and config check warns
// with its reason. A valid configuration is assumed.
func (c Config) ShedWay() (ShedVia, error) {
	switch {
	case c.Shed.Via == ShedViaHook && c.Shed.HookURL != "":
		return ShedViaHook, nil
	case c.Shed.Via == ShedViaRuntime && len(c.HAProxy) > 0:
		return ShedViaRuntime, nil
	case c.Shed.Via == ShedViaKernel && len(c.Sources.Ports) > 0:
		return ShedViaKernel, nil
	case c.Shed.Via == ShedViaRuntime && c.Shed.HookURL != "":
		return "", fmt.Errorf("%w: shed.hook_url is set, but shed.via is runtime and no haproxy[].runtime endpoint is configured: set shed.via: hook to have the application close them", ErrCannotShed)
	}
	return "", fmt.Errorf("%w, so `hafeed drain --wait --shed-rate` (what the packaged hafeed-drain.conf runs) closes none: "+
		"configure haproxy[].runtime (shed.via: runtime, HAProxy closes sessions), shed.hook_url with shed.via: hook (the application closes its sockets), "+
		"or sources.ports with shed.via: kernel (the kernel closes the sockets; the agent needs CAP_NET_ADMIN)", ErrCannotShed)
}
