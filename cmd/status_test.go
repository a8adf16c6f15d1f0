package cmd

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hafeed/hafeed/agent/control"
)

func TestStyle(t *testing.T) {
	if got := (style{on: true}).admin("drain"); got != "\033[33mdrain\033[0m" {
		t.Errorf("coloured admin = %q", got)
	}
	if got := (style{}).bad("boom"); got != "boom" {
		t.Errorf("uncoloured = %q", got)
	}
	var buf bytes.Buffer
	if styleFor(&buf).on {
		t.Errorf("colour on for a buffer, want it only on a terminal")
	}
}

func TestPrintStatusRestartNeeded(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	st := &control.Status{Admin: "ready", Since: now, StartedAt: now, ControlSocket: "/run/hafeed/control.sock"}
	var buf bytes.Buffer
	printStatus(&buf, st, now, style{})
	if strings.Contains(buf.String(), "restart needed") {
		t.Errorf("status without pending keys mentions a restart:\n%s", buf.String())
	}
	st.RestartNeeded = []string{"control_socket", "state_file"}
	buf.Reset()
	printStatus(&buf, st, now, style{})
	if !regexp.MustCompile(`(?m)^restart needed +control_socket, state_file changed in the config`).MatchString(buf.String()) {
		t.Errorf("status does not list the keys waiting for a restart:\n%s", buf.String())
	}
}

// TestPrintStatusEndpointWithoutServers checks the haproxy row of an
// endpoint where this host has no server yet, which read "servers ," (issue
// 17), and the row of one where it has.
func TestPrintStatusEndpointWithoutServers(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	st := &control.Status{Admin: "drain", Since: now, StartedAt: now, HAProxy: []control.EndpointStatus{
		{Runtime: "unix:///run/haproxy/admin.sock", Applied: "drain", AppliedAt: now.Add(-3 * time.Second), Error: "this host is not a server in HAProxy"},
		{Runtime: "tcp://10.0.0.2:9999", Servers: []string{"ws/web1", "ws/web2"}, Applied: "drain", AppliedAt: now.Add(-3 * time.Second)},
	}}
	var buf bytes.Buffer
	printStatus(&buf, st, now, style{})
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^haproxy +unix:///run/haproxy/admin\.sock \(no server of this host found in it\), pushed drain 3s ago: this host is not a server in HAProxy$`),
		regexp.MustCompile(`(?m)^haproxy +tcp://10\.0\.0\.2:9999 servers ws/web1,ws/web2, pushed drain 3s ago$`),
	} {
		if !want.MatchString(buf.String()) {
			t.Errorf("status:\n%s\nwant a line matching %s", buf.String(), want)
		}
	}
	if strings.Contains(buf.String(), "servers ,") {
		t.Errorf("status says \"servers ,\":\n%s", buf.String())
	}
}

// TestAgo: an age is never negative, also after the wall clock was set
// back past the time it is measured from (an admin change, a poll).
func TestAgo(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		t    time.Time
		want string
	}{
		{time.Time{}, "?"},
		{now.Add(-250 * time.Millisecond), "250ms"},
		{now.Add(-90 * time.Second), "1m30s"},
		{now.Add(-3 * time.Hour), "3h0m0s"},
		{now.Add(5 * time.Second), "0s (the clock was set back since)"},
	} {
		if got := ago(now, tt.t); got != tt.want {
			t.Errorf("ago(now, now%+v) = %q, want %q", tt.t.Sub(now), got, tt.want)
		}
	}
}
