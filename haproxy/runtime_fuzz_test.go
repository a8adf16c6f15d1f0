package haproxy

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// addFixtures seeds a fuzzer with real HAProxy 2.6 output.
func addFixtures(f *testing.F, names ...string) {
	f.Helper()
	for _, name := range names {
		f.Add(fixtureOutput(f, name))
	}
}

func FuzzSplitReply(f *testing.F) {
	for _, name := range []string{"ok_set_state", "show_cli_level", "get_weight", "err_weight_garbage", "err_unknown_command", "show_sess"} {
		f.Add(fixture(f, name))
	}
	f.Add("")
	f.Add("\n[9]: x\n\n")
	f.Fuzz(func(t *testing.T, raw string) {
		out, severity, err := splitReply(raw)
		if err != nil {
			return
		}
		if severity < -1 || severity > 7 {
			t.Errorf("severity %d out of -1..7", severity)
		}
		if !strings.Contains(raw, out) {
			t.Errorf("output %q is not part of the reply %q", out, raw)
		}
		if len(out) >= len(raw) {
			t.Errorf("output %q is not shorter than the reply %q", out, raw)
		}
	})
}

func FuzzParseStat(f *testing.F) {
	addFixtures(f, "show_stat", "show_stat_ws")
	f.Add("# pxname,svname,weight,\nws,\"w,s\"\"1\",3,\n")
	f.Fuzz(func(t *testing.T, out string) {
		stats, err := parseStat(out)
		if err != nil {
			return
		}
		header, _, _ := strings.Cut(out, "\n")
		columns := len(strings.Split(header, ","))
		for _, s := range stats {
			if s.Proxy == "" || s.Server == "" {
				t.Errorf("row without pxname or svname: %+v", s)
			}
			if s.Fields["pxname"] != s.Proxy || s.Fields["svname"] != s.Server || s.Fields["status"] != s.Status {
				t.Errorf("typed fields disagree with Fields: %+v", s)
			}
			if s.Weight < 0 || s.UWeight < 0 || s.Scur < 0 || s.Slim < 0 {
				t.Errorf("negative count: %+v", s)
			}
			if len(s.Fields) > columns {
				t.Errorf("%d fields from a %d-column header", len(s.Fields), columns)
			}
		}
	})
}

func FuzzParseServersState(f *testing.F) {
	addFixtures(f, "show_servers_state", "show_servers_state_ws")
	f.Add("1\n# be_name srv_name srv_addr srv_port srv_op_state srv_admin_state srv_uweight srv_iweight\nws ws1 - 0 0 0 0 0\n")
	f.Fuzz(func(t *testing.T, out string) {
		states, err := parseServersState(out)
		if err != nil {
			return
		}
		for _, s := range states {
			if s.Backend != s.Fields["be_name"] || s.Name != s.Fields["srv_name"] {
				t.Errorf("typed fields disagree with Fields: %+v", s)
			}
			if s.Addr.IsValid() == (s.Fields["srv_addr"] == "-") {
				t.Errorf("Addr %v from srv_addr %q", s.Addr, s.Fields["srv_addr"])
			}
			for _, n := range []int{s.Port, s.OpState, s.AdminState, s.UWeight, s.IWeight} {
				if n < 0 || n > math.MaxInt32 {
					t.Errorf("number out of range: %+v", s)
				}
			}
			if s.Backend == "" || s.Name == "" || strings.ContainsAny(s.Backend+s.Name, " \t\n") {
				t.Errorf("bad names: %+v", s)
			}
		}
	})
}

func FuzzParseSessions(f *testing.F) {
	addFixtures(f, "show_sess", "show_sess_tcp")
	f.Add("0x1: proto=tcpv6 src=2001:db8::1:443 fe=a be=b srv=c age=1d3h\n")
	f.Add("0xABC: proto=x age=?\n")
	f.Fuzz(func(t *testing.T, out string) {
		sessions, err := parseSessions(out)
		if err != nil {
			return
		}
		if lines := strings.Count(out, "\n") + 1; len(sessions) > lines {
			t.Errorf("%d sessions from %d lines", len(sessions), lines)
		}
		for _, s := range sessions {
			if !isSessionID(s.ID) {
				t.Errorf("session ID %q is not one ShutdownSession takes", s.ID)
			}
			if s.Proto == "" || strings.ContainsAny(s.Proto+s.Src+s.Frontend+s.Backend+s.Server, " \n") {
				t.Errorf("bad words: %+v", s)
			}
			if s.Age < 0 || s.Age%time.Second != 0 || s.Age > math.MaxInt32*time.Second {
				t.Errorf("age %v", s.Age)
			}
			if s.SrcAddr.IsValid() && !strings.HasSuffix(s.Src, fmt.Sprintf(":%d", s.SrcAddr.Port())) {
				t.Errorf("SrcAddr %v from src %q", s.SrcAddr, s.Src)
			}
		}
	})
}

func FuzzParseHumanTime(f *testing.F) {
	for _, s := range []string{"0s", "2m3s", "1h2m", "1d3h", "1d5s", "?", "24855d3h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseHumanTime(s)
		if err != nil {
			return
		}
		if d < 0 || d%time.Second != 0 || d > math.MaxInt32*time.Second {
			t.Errorf("parseHumanTime(%q) = %v", s, d)
		}
		// What HAProxy prints for d parses back to at most d (it drops all
		// but two units), and prints the same again.
		shown := humanTime(d)
		back, err := parseHumanTime(shown)
		if err != nil || back > d || humanTime(back) != shown {
			t.Errorf("parseHumanTime(%q) = %v, HAProxy shows %q, which parses as %v, %v", s, d, shown, back, err)
		}
	})
}

// humanTime renders d the way HAProxy's human_time() does: the two largest
// non-zero units, "0s" for zero.
func humanTime(d time.Duration) string {
	t := int64(d / time.Second)
	var b strings.Builder
	left := 2
	if t >= 86400 {
		fmt.Fprintf(&b, "%dd", t/86400)
		left--
	}
	if left > 0 && t%86400/3600 != 0 {
		fmt.Fprintf(&b, "%dh", t%86400/3600)
		left--
	}
	if left > 0 && t%3600/60 != 0 {
		fmt.Fprintf(&b, "%dm", t%3600/60)
		left--
	}
	if left > 0 && t%60 != 0 || t == 0 {
		fmt.Fprintf(&b, "%ds", t%60)
	}
	return b.String()
}

func FuzzParseInfo(f *testing.F) {
	addFixtures(f, "show_info")
	f.Add("Pid: 1\nUptime_sec: 0\n")
	f.Fuzz(func(t *testing.T, out string) {
		info, err := parseInfo(out)
		if err != nil {
			return
		}
		if info.PID <= 0 || info.UptimeSec < 0 {
			t.Errorf("parseInfo() = %+v", info)
		}
		if info.Version != info.Fields["Version"] || info.Node != info.Fields["node"] {
			t.Errorf("typed fields disagree with Fields: %+v", info)
		}
	})
}

func FuzzParseWeight(f *testing.F) {
	addFixtures(f, "get_weight")
	f.Add("0 (initial 0)")
	f.Add("256 (initial 256)\n")
	f.Fuzz(func(t *testing.T, out string) {
		current, initial, err := parseWeight(out)
		if err != nil {
			return
		}
		if current < 0 || current > MaxWeight || initial < 0 || initial > MaxWeight {
			t.Errorf("parseWeight(%q) = %d, %d", out, current, initial)
		}
		c2, i2, err := parseWeight(fmt.Sprintf("%d (initial %d)\n", current, initial))
		if err != nil || c2 != current || i2 != initial {
			t.Errorf("HAProxy's rendering of %d, %d parses as %d, %d, %v", current, initial, c2, i2, err)
		}
	})
}
