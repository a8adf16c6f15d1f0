package procstat

import (
	"os"
	"testing"
)

func TestParseStatTicks(t *testing.T) {
	t.Parallel()
	// A command name with spaces and a parenthesis, as the kernel prints it.
	stat := []byte("1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194560 100 0 0 0 217 45 0 0 20 0 3 0 5000 1000 200")
	u, s, err := parseStatTicks(stat, 1234)
	if err != nil {
		t.Fatal(err)
	}
	if u != 217 || s != 45 {
		t.Errorf("parseStatTicks = %d, %d, want 217, 45", u, s)
	}
	if _, _, err := parseStatTicks([]byte("1234 (x) S 1"), 1234); err == nil {
		t.Error("parseStatTicks of a short line: no error")
	}
}

func TestOwnProcess(t *testing.T) {
	t.Parallel()
	if _, _, err := CPUTicks(os.Getpid()); err != nil {
		t.Errorf("CPUTicks(self): %v", err)
	}
	if rss, err := StatusKB(os.Getpid(), "VmRSS"); err != nil || rss <= 0 {
		t.Errorf("StatusKB(self, VmRSS) = %d, %v", rss, err)
	}
	if ClockTicks() == 0 {
		t.Error("ClockTicks() = 0")
	}
}

func TestParseTCPExt(t *testing.T) {
	t.Parallel()
	in := "TcpExt: SyncookiesSent ListenOverflows TCPSynRetrans\nTcpExt: 0 12 746\nIpExt: InNoRoutes\nIpExt: 0\n"
	got := parseTCPExt(in)
	if got["ListenOverflows"] != 12 || got["TCPSynRetrans"] != 746 || len(got) != 3 {
		t.Errorf("parseTCPExt = %v, want ListenOverflows 12, TCPSynRetrans 746 and one more", got)
	}
}
