package haproxy

import (
	"fmt"
	"strconv"
	"strings"
)

// Admin is the administrative state hafeed asks HAProxy to hold for a server.
type Admin uint8

// The admin states, in the words of the agent-check protocol.
const (
	AdminReady Admin = iota
	AdminDrain
	AdminMaint
)

func (a Admin) String() string {
	switch a {
	case AdminReady:
		return "ready"
	case AdminDrain:
		return "drain"
	case AdminMaint:
		return "maint"
	}
	return "admin(" + strconv.Itoa(int(a)) + ")"
}

// ParseAdmin turns "ready", "drain" or "maint" into an Admin.
func ParseAdmin(s string) (Admin, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "ready":
		return AdminReady, nil
	case "drain":
		return AdminDrain, nil
	case "maint":
		return AdminMaint, nil
	}
	return 0, fmt.Errorf("unknown admin state %q: want ready, drain or maint", s)
}

// MaxWeightPercent is the largest useful weight percentage: HAProxy caps a
// server's weight at 256, which is 256% of the recommended "weight 100".
const MaxWeightPercent = 256

// Reply is one agent-check answer, before it is rendered to a line.
type Reply struct {
	Admin Admin
	// AnnounceReady adds the "ready" word. HAProxy applies "ready" to the
	// admin flags an operator set through the runtime API too, so hafeed sends
	// it only while it leaves its own drain or maint.
	AnnounceReady bool
	// WeightPercent is the weight relative to the configured one (1..256);
	// 0 leaves the weight out of the reply.
	WeightPercent int
	// Maxconn, when positive or when SendMaxconn is set, sets the server's
	// maxconn; "maxconn:0" lifts the limit.
	Maxconn     int
	SendMaxconn bool
}

// Line renders the reply as the single newline-terminated line HAProxy reads.
func (r Reply) Line() string {
	var words []string
	switch r.Admin {
	case AdminMaint:
		// In maint the weight is moot, and "up" would be noise.
		return "maint\n"
	case AdminDrain:
		words = append(words, "drain")
	default:
		if r.AnnounceReady {
			words = append(words, "ready")
		}
	}
	// "up" restores the agent's health: a server whose only check is the
	// agent stays DOWN after a "down" (and on HAProxy 3.3 and later from its
	// start) until a reply says "up", drained or not.
	words = append(words, "up")
	if r.WeightPercent > 0 {
		words = append(words, strconv.Itoa(min(r.WeightPercent, MaxWeightPercent))+"%")
	}
	if r.Maxconn > 0 || r.SendMaxconn {
		words = append(words, "maxconn:"+strconv.Itoa(r.Maxconn))
	}
	return strings.Join(words, " ") + "\n"
}
