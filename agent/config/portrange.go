package config

import (
	"fmt"
	"strconv"
	"strings"
)

// PortRange is a range of TCP ports, both ends included.
type PortRange struct{ Low, High int }

// Size is how many ports the range holds.
func (r PortRange) Size() int { return r.High - r.Low + 1 }

func (r PortRange) String() string { return fmt.Sprintf("%d-%d", r.Low, r.High) }

// LinuxDefaultPortRange is Linux's default net.ipv4.ip_local_port_range.
var LinuxDefaultPortRange = PortRange{32768, 60999}

// ParsePortRange reads "LOW-HIGH", as source_ports.range is written, or
// "LOW HIGH" / "LOW\tHIGH", as /proc/sys/net/ipv4/ip_local_port_range is.
func ParsePortRange(s string) (PortRange, error) {
	f := strings.FieldsFunc(strings.TrimSpace(s), func(r rune) bool { return r == '-' || r == ' ' || r == '\t' })
	if len(f) != 2 {
		return PortRange{}, fmt.Errorf("%q is not a port range: want LOW-HIGH, for example 32768-60999", s)
	}
	low, err1 := strconv.Atoi(f[0])
	high, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || low < 1 || high > 65535 || low > high {
		return PortRange{}, fmt.Errorf("%q is not a port range: want LOW-HIGH with 1 <= LOW <= HIGH <= 65535, for example 32768-60999", s)
	}
	return PortRange{low, high}, nil
}
