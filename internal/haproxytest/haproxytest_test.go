package haproxytest

import "testing"

func TestParseVersion(t *testing.T) {
	for _, tt := range []struct {
		out          string
		version      string
		major, minor int
		atLeast31    bool
	}{
		{"HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/\nStatus: long-term", "2.6.12", 2, 6, false},
		{"HAProxy version 3.0.11-1+deb13u4 2026/10/15 - https://haproxy.org/\n", "3.0.11", 3, 0, false},
		{"HAProxy version 3.2.26-1 2026/10/14 - https://haproxy.org/\n", "3.2.26", 3, 2, true},
		{"HA-Proxy version 1.8.19 2019/02/11\n", "1.8.19", 1, 8, false},
		{"HAProxy version 3.3-dev5 2025/08/01\n", "3.3", 3, 3, true},
	} {
		b, err := parseVersion("haproxy", tt.out)
		if err != nil {
			t.Fatalf("parseVersion(%q): %v", tt.out, err)
		}
		if b.Version != tt.version || b.Major != tt.major || b.Minor != tt.minor || b.AtLeast(3, 1) != tt.atLeast31 {
			t.Errorf("parseVersion(%q) = %+v (3.1+: %v), want %s %d.%d (3.1+: %v)", tt.out, b, b.AtLeast(3, 1), tt.version, tt.major, tt.minor, tt.atLeast31)
		}
	}
	if _, err := parseVersion("haproxy", "command not found"); err == nil {
		t.Error("parseVersion accepted output without a version line")
	}
}
