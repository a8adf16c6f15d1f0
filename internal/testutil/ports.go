package testutil

import (
	"net"
	"os"
)

// FreeLoopbackAddr returns a loopback address whose port is free at the
// time of the call, for a process that cannot bind port 0 and report the
// port it got. Another process may take the port before it is used.
func FreeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// FreeAddr is FreeLoopbackAddr for a test, which fails if none is found.
func FreeAddr(t TB) string {
	t.Helper()
	addr, err := FreeLoopbackAddr()
	if err != nil {
		t.Fatalf("finding a free loopback port: %v", err)
	}
	return addr
}

// FreePort is the port of FreeAddr.
func FreePort(t TB) int {
	t.Helper()
	addr, err := net.ResolveTCPAddr("tcp", FreeAddr(t))
	if err != nil {
		t.Fatalf("finding a free loopback port: %v", err)
	}
	return addr.Port
}

// CleanupTB is a TB that runs functions when the test ends.
type CleanupTB interface {
	TB
	Cleanup(func())
}

// ShortTempDir is a temporary directory, removed when the test ends, whose
// path leaves room for a Unix socket name (108 bytes at most), which
// t.TempDir does not for a long test name.
func ShortTempDir(t CleanupTB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hf")
	if err != nil {
		t.Fatalf("making a temporary directory: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
