package haproxy

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var ignoreFields = cmp.Options{
	cmpopts.IgnoreFields(Stat{}, "Fields"),
	cmpopts.IgnoreFields(ServerState{}, "Fields"),
	cmpopts.IgnoreFields(Session{}, "Fields"),
	cmpopts.IgnoreFields(Info{}, "Fields"),
	cmpopts.EquateComparable(netip.Addr{}, netip.AddrPort{}),
}

func TestParseStat(t *testing.T) {
	t.Parallel()
	ws1 := Stat{Proxy: "ws", Server: "ws1", Status: "UP", Weight: 100, UWeight: 100, Scur: 3, CheckStatus: "L4OK", AgentStatus: "L7OK", LastAgt: "via agent : up", Addr: "127.0.0.1:18081"}
	// An agent's reply with a quote comes back quoted, CSV style.
	ws2 := Stat{Proxy: "ws", Server: "ws2", Status: "DRAIN (agent)", Weight: 50, UWeight: 50, CheckStatus: "L4OK", AgentStatus: "CHECKED", LastAgt: `agent reports an error : bo"gus`, Addr: "127.0.0.1:18082"}
	tests := []struct {
		fixture string
		want    []Stat
	}{
		{fixture: "show_stat_ws", want: []Stat{ws1, ws2}},
		{fixture: "show_stat", want: []Stat{
			{Proxy: "fe", Server: "FRONTEND", Status: "OPEN", Scur: 3, Slim: 9980},
			ws1,
			ws2,
			{Proxy: "ws", Server: "BACKEND", Status: "UP", Weight: 100, UWeight: 100, Scur: 3, Slim: 998},
			{Proxy: "other", Server: "o1", Status: "MAINT", Weight: 1, UWeight: 1, Addr: "127.0.0.1:18083"},
			{Proxy: "other", Server: "o2", Status: "DOWN", Weight: 1, UWeight: 1, CheckStatus: "L4CON", Addr: "127.0.0.1:18084"},
			{Proxy: "other", Server: "o3", Status: "MAINT", Weight: 1, UWeight: 1, Addr: "127.0.0.1:18085"},
			{Proxy: "other", Server: "BACKEND", Status: "DOWN", Slim: 1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			t.Parallel()
			got, err := parseStat(fixtureOutput(t, tt.fixture))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, ignoreFields); diff != "" {
				t.Errorf("parseStat() mismatch (-want +got):\n%s", diff)
			}
			// Every named column is kept; the header's trailing comma names none.
			for _, s := range got {
				if len(s.Fields) != 128 {
					t.Errorf("%s/%s: %d fields, want 128", s.Proxy, s.Server, len(s.Fields))
				}
				if _, ok := s.Fields[""]; ok {
					t.Errorf("%s/%s: a field with an empty name", s.Proxy, s.Server)
				}
			}
		})
	}

	t.Run("fields", func(t *testing.T) {
		t.Parallel()
		got, err := parseStat(fixtureOutput(t, "show_stat_ws"))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"check_desc": "Layer4 check passed", "last_chk": "", "agent_desc": "No status change", "lbtot": "0", "slim": "", "qcur": "0"}
		for name, value := range want {
			if got := got[1].Fields[name]; got != value {
				t.Errorf("ws2 Fields[%q] = %q, want %q", name, got, value)
			}
		}
	})
}

func TestParseStatErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, out, wantErr string
	}{
		{name: "empty", out: "", wantErr: `stats have no "# " header line: ""`},
		{name: "no header", out: "ws,ws1,UP\n", wantErr: `stats have no "# " header line`},
		{name: "header without names", out: "# qcur,status\nws,ws1\n", wantErr: `stats header lacks column "pxname"`},
		{name: "more columns than header", out: "# pxname,svname,\nws,ws1,,x\n", wantErr: "stats row 1 has 4 columns, the header 3"},
		{name: "no server name", out: "# pxname,svname,\nws,,\n", wantErr: "stats row 1 has no pxname or svname"},
		{name: "weight not a number", out: "# pxname,svname,weight,\nws,ws1,heavy,\n", wantErr: `stats row 1: weight: "heavy" is not a non-negative number`},
		{name: "negative scur", out: "# pxname,svname,scur,\nws,ws1,-1,\n", wantErr: `scur: "-1" is not a non-negative number`},
		{name: "unterminated quote", out: "# pxname,svname,last_agt,\nws,ws1,\"up,\n", wantErr: "stats: "},
	}
	for _, tt := range tests {
		_, err := parseStat(tt.out)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: parseStat() error = %v, want one containing %q", tt.name, err, tt.wantErr)
		}
	}
	// Rows with fewer columns than the header are fine (no such column).
	got, err := parseStat("# pxname,svname,status,weight,\nws,ws1\n")
	if err != nil || len(got) != 1 || got[0].Weight != 0 {
		t.Errorf("short row: parseStat() = %+v, %v", got, err)
	}
}

func TestParseServersState(t *testing.T) {
	t.Parallel()
	lo := netip.MustParseAddr("127.0.0.1")
	ws := []ServerState{
		{Backend: "ws", Name: "ws1", Addr: lo, Port: 18081, OpState: 2, AdminState: 0, UWeight: 100, IWeight: 100},
		{Backend: "ws", Name: "ws2", Addr: lo, Port: 18082, OpState: 2, AdminState: AdminStateForcedDrain, UWeight: 50, IWeight: 100},
	}
	tests := []struct {
		fixture string
		want    []ServerState
	}{
		{fixture: "show_servers_state_ws", want: ws},
		{fixture: "show_servers_state", want: append(append([]ServerState(nil), ws...),
			ServerState{Backend: "other", Name: "o1", Addr: lo, Port: 18083, OpState: 0, AdminState: AdminStateForcedMaint, UWeight: 1, IWeight: 1},
			ServerState{Backend: "other", Name: "o2", Addr: lo, Port: 18084, OpState: 0, AdminState: 0, UWeight: 1, IWeight: 1},
			// "disabled" in haproxy.cfg: config maint plus forced maint.
			ServerState{Backend: "other", Name: "o3", Addr: lo, Port: 18085, OpState: 0, AdminState: AdminStateForcedMaint | AdminStateConfigMaint, UWeight: 1, IWeight: 1},
		)},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			t.Parallel()
			got, err := parseServersState(fixtureOutput(t, tt.fixture))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, ignoreFields); diff != "" {
				t.Errorf("parseServersState() mismatch (-want +got):\n%s", diff)
			}
			for _, s := range got {
				if len(s.Fields) != 25 || s.Fields["srv_agent_addr"] != "-" {
					t.Errorf("%s/%s: Fields = %v, want the 25 columns", s.Backend, s.Name, s.Fields)
				}
			}
		})
	}
	t.Run("flags", func(t *testing.T) {
		t.Parallel()
		got, err := parseServersState(fixtureOutput(t, "show_servers_state"))
		if err != nil {
			t.Fatal(err)
		}
		var drained, maint []string
		for _, s := range got {
			if s.ForcedDrain() {
				drained = append(drained, s.Name)
			}
			if s.ForcedMaint() {
				maint = append(maint, s.Name)
			}
		}
		if diff := cmp.Diff([]string{"ws2"}, drained); diff != "" {
			t.Errorf("ForcedDrain (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"o1", "o3"}, maint); diff != "" {
			t.Errorf("ForcedMaint (-want +got):\n%s", diff)
		}
	})
}

func TestParseServersStateEdgeCases(t *testing.T) {
	t.Parallel()
	header := "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_port\n"
	tests := []struct {
		name, out string
		want      []ServerState
		wantErr   string
	}{
		{name: "no servers", out: "1\n" + header},
		{name: "no address", out: "1\n" + header + "3 ws 1 ws1 - 0 32 1 1 0\n",
			want: []ServerState{{Backend: "ws", Name: "ws1", AdminState: 32, UWeight: 1, IWeight: 1}}},
		{name: "ipv6", out: "1\n" + header + "3 ws 1 ws1 2001:db8::1 2 0 7 100 443\n",
			want: []ServerState{{Backend: "ws", Name: "ws1", Addr: netip.MustParseAddr("2001:db8::1"), OpState: 2, UWeight: 7, IWeight: 100, Port: 443}}},
		{name: "empty", out: "", wantErr: `servers state format version "", want "1"`},
		{name: "other version", out: "2\n" + header, wantErr: `servers state format version "2", want "1"`},
		{name: "no header", out: "1\n", wantErr: `servers state has no "# " header line`},
		{name: "missing column", out: "1\n# be_id be_name srv_name\n", wantErr: `servers state header lacks column "srv_addr"`},
		{name: "short row", out: "1\n" + header + "3 ws 1 ws1\n", wantErr: "servers state row 1 has 4 columns, the header 10"},
		{name: "bad address", out: "1\n" + header + "3 ws 1 ws1 host 2 0 1 1 80\n", wantErr: `servers state row 1: srv_addr "host" is not an IP address`},
		{name: "bad weight", out: "1\n" + header + "3 ws 1 ws1 10.0.0.1 2 0 x 1 80\n", wantErr: `servers state row 1: srv_uweight: "x" is not a non-negative number`},
	}
	for _, tt := range tests {
		got, err := parseServersState(tt.out)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error = %v, want one containing %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got, ignoreFields); diff != "" {
			t.Errorf("%s: mismatch (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestParseSessions(t *testing.T) {
	t.Parallel()
	client := func(id, src string) Session {
		return Session{
			ID: id, Proto: "tcpv4", Src: src, SrcAddr: netip.MustParseAddrPort(src),
			Frontend: "fe", Backend: "ws", Server: "ws1", Age: 2*time.Minute + 2*time.Second,
		}
	}
	want := []Session{
		// IPv6 clients are printed without brackets.
		{ID: "0x561777cc72d0", Proto: "tcpv6", Src: "::1:43434", SrcAddr: netip.MustParseAddrPort("[::1]:43434"),
			Frontend: "fe", Backend: "ws", Server: "ws1", Age: 2*time.Minute + 2*time.Second},
		client("0x561777de79d0", "127.0.0.1:50652"),
		// The CLI connection that asked is listed too.
		{ID: "0x561777de8aa0", Proto: "unix_stream", Src: "unix:1", Frontend: "GLOBAL"},
		client("0x7fb66803dfc0", "127.0.0.1:50666"),
	}
	got, err := parseSessions(fixtureOutput(t, "show_sess"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, ignoreFields); diff != "" {
		t.Errorf("parseSessions() mismatch (-want +got):\n%s", diff)
	}
	wantFields := map[string]string{
		"proto": "unix_stream", "src": "unix:1", "fe": "GLOBAL", "be": "<NONE>", "srv": "<none>",
		"ts": "00", "epoch": "0x2", "age": "0s", "calls": "1", "rate": "0", "cpu": "0", "lat": "0",
		"scf": "[8,0h,fd=22]", "scb": "[8,1h,fd=-1]", "exp": "", "rc": "0", "c_exp": "",
	}
	if len(got) == 4 {
		if diff := cmp.Diff(wantFields, got[2].Fields); diff != "" {
			t.Errorf("CLI session Fields (-want +got):\n%s", diff)
		}
	}

	// Over the TCP stats socket the CLI connection is a tcpv4 stream.
	tcp, err := parseSessions(fixtureOutput(t, "show_sess_tcp"))
	if err != nil {
		t.Fatal(err)
	}
	var cli []Session
	for _, s := range tcp {
		if s.Frontend == "GLOBAL" {
			cli = append(cli, s)
		}
	}
	wantCLI := []Session{{ID: "0x7fb668048550", Proto: "tcpv4", Src: "127.0.0.1:55864", SrcAddr: netip.MustParseAddrPort("127.0.0.1:55864"), Frontend: "GLOBAL"}}
	if diff := cmp.Diff(wantCLI, cli, ignoreFields); diff != "" {
		t.Errorf("CLI session over TCP (-want +got):\n%s", diff)
	}
}

func TestParseSessionsErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ out, wantErr string }{
		{out: "hello\n", wantErr: `sessions line 1: want "0x<pointer>: proto=...", got "hello"`},
		{out: "0x1: proto=tcpv4 age=1s\n0xzz: proto=tcpv4\n", wantErr: "sessions line 2: want"},
		{out: "0x1: src=127.0.0.1:1 age=1s\n", wantErr: "sessions line 1: session 0x1 has no proto"},
		{out: "0x1: proto=tcpv4 age=1x\n", wantErr: `sessions line 1: session 0x1: age: "1x" is not a HAProxy duration`},
	} {
		if _, err := parseSessions(tt.out); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("parseSessions(%q) error = %v, want one containing %q", tt.out, err, tt.wantErr)
		}
	}
	got, err := parseSessions("")
	if err != nil || len(got) != 0 {
		t.Errorf("parseSessions(\"\") = %v, %v; want none", got, err)
	}
}

func TestParseHumanTime(t *testing.T) {
	t.Parallel()
	tests := map[string]time.Duration{
		"0s":       0,
		"1s":       time.Second,
		"59s":      59 * time.Second,
		"2m3s":     2*time.Minute + 3*time.Second,
		"2m":       2 * time.Minute,
		"1h2m":     time.Hour + 2*time.Minute,
		"1h5s":     time.Hour + 5*time.Second, // minutes were 0
		"1d3h":     27 * time.Hour,
		"1d5s":     24*time.Hour + 5*time.Second,
		"24855d3h": (24855*24 + 3) * time.Hour,
		"?":        0, // HAProxy's "cannot tell"
	}
	for in, want := range tests {
		got, err := parseHumanTime(in)
		if err != nil || got != want {
			t.Errorf("parseHumanTime(%q) = %v, %v; want %v", in, got, err, want)
		}
		// The fuzz test's model of human_time() must print these as HAProxy did.
		if in != "?" && humanTime(want) != in {
			t.Errorf("humanTime(%v) = %q, want %q", want, humanTime(want), in)
		}
	}
	for _, in := range []string{"", "s", "1", "1x", "3s2m", "1s1s", "1m1d", "-1s", "1.5s", "1ms", "99999999999d", "24856d23h"} {
		if got, err := parseHumanTime(in); err == nil {
			t.Errorf("parseHumanTime(%q) = %v, want an error", in, got)
		}
	}
}

func TestParseInfo(t *testing.T) {
	t.Parallel()
	got, err := parseInfo(fixtureOutput(t, "show_info"))
	if err != nil {
		t.Fatal(err)
	}
	want := Info{PID: 6190, UptimeSec: 123, Version: "2.6.12-1+deb12u4", Node: "vm"}
	if diff := cmp.Diff(want, got, ignoreFields); diff != "" {
		t.Errorf("parseInfo() mismatch (-want +got):\n%s", diff)
	}
	for name, value := range map[string]string{"Name": "HAProxy", "Unstoppable Jobs": "0", "Build info": "2.6.12-1+deb12u4", "Nbthread": "2", "Uptime": "0d 0h02m03s"} {
		if got.Fields[name] != value {
			t.Errorf("Fields[%q] = %q, want %q", name, got.Fields[name], value)
		}
	}

	for _, tt := range []struct{ out, wantErr string }{
		{out: "", wantErr: `info has no valid Pid: ""`},
		{out: "Pid: 12\n", wantErr: `info has no valid Uptime_sec: ""`},
		{out: "Pid: x\nUptime_sec: 1\n", wantErr: `info has no valid Pid: "x"`},
		{out: "Pid: 0\nUptime_sec: 1\n", wantErr: `info has no valid Pid: "0"`},
		{out: "Pid: 12\nUptime_sec: -1\n", wantErr: `info has no valid Uptime_sec: "-1"`},
	} {
		if _, err := parseInfo(tt.out); err == nil || err.Error() != tt.wantErr {
			t.Errorf("parseInfo(%q) error = %v, want %s", tt.out, err, tt.wantErr)
		}
	}
}

func TestParseWeight(t *testing.T) {
	t.Parallel()
	tests := []struct {
		out              string
		current, initial int
		wantErr          bool
	}{
		{out: fixtureOutput(t, "get_weight"), current: 50, initial: 100},
		{out: "0 (initial 100)\n", current: 0, initial: 100},
		{out: "256 (initial 1)", current: 256, initial: 1},
		{out: "", wantErr: true},
		{out: "50\n", wantErr: true},
		{out: "50 (initial 100\n", wantErr: true},
		{out: "-1 (initial 100)\n", wantErr: true},
		{out: "257 (initial 100)\n", wantErr: true},
		{out: "50 (initial 300)\n", wantErr: true},
		{out: " 50 (initial 100)\n", wantErr: true},
		{out: "50 (initial 100)\nmore\n", wantErr: true},
	}
	for _, tt := range tests {
		current, initial, err := parseWeight(tt.out)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseWeight(%q) error = %v, want error %v", tt.out, err, tt.wantErr)
			continue
		}
		if current != tt.current || initial != tt.initial {
			t.Errorf("parseWeight(%q) = %d, %d; want %d, %d", tt.out, current, initial, tt.current, tt.initial)
		}
	}
}

// parseSessions parses a whole "show sess" reply, as EachSession does a
// line at a time, so that the line parser can be tested on fixtures; one
// line per stream:
// "0x55c500d220a0: proto=tcpv4 src=127.0.0.1:51134 fe=fe be=be srv=s1 ts=00 epoch=0 age=1s calls=2 ...".
func parseSessions(out string) ([]Session, error) {
	var sessions []Session
	for n, line := range strings.Split(out, "\n") {
		if line == "" {
			continue
		}
		s, err := parseSessionLine(line)
		if err != nil {
			return nil, fmt.Errorf("sessions line %d: %w", n+1, err)
		}
		sessions = append(sessions, s)
	}
	return sessions, nil
}
