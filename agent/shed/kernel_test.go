package shed

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hafeed/hafeed/internal/sockdiag"
)

// kernelCloserOn is a closer of the connections to a new listener, with n
// of them open, and a count of the netlink requests it makes; it skips,
// saying so, where this process cannot close sockets.
func kernelCloserOn(t *testing.T, n int) (*KernelCloser, *atomic.Int32, func() int) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	for range n {
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(); s.Close() })
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	k, err := NewKernelCloser([]uint16{port})
	if err != nil {
		t.Skipf("SKIPPED, NOT PASSED: this process cannot close sockets: %v", err)
	}
	var requests atomic.Int32
	k.diag.Socket = func() (int, error) {
		requests.Add(1)
		return unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	}
	left := func() int {
		n := 0
		if err := (sockdiag.Diag{}).EachTCP(sockdiag.Established, []uint16{port}, func(sockdiag.Sock) { n++ }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	return k, &requests, left
}

func TestKernelCloserClosesUpToN(t *testing.T) {
	t.Parallel()
	k, _, left := kernelCloserOn(t, 6)
	if closed, err := k.Close(context.Background(), 2, "drain"); closed != 2 || err != nil {
		t.Fatalf("Close(2) = %d, %v; want 2, nil", closed, err)
	}
	if n := left(); n != 4 {
		t.Errorf("connections left after closing 2 of 6 = %d, want 4", n)
	}
	if closed, err := k.Close(context.Background(), 10, "drain"); closed != 4 || err != nil {
		t.Errorf("Close(10) with 4 left = %d, %v; want 4, nil", closed, err)
	}
	if closed, err := k.Close(context.Background(), 1, "drain"); closed != 0 || !errors.Is(err, ErrNoSockets) {
		t.Errorf("Close(1) with none left = %d, %v; want 0, ErrNoSockets", closed, err)
	}
}

// TestKernelCloserListsOncePerRun checks that a drain closing a few at a
// time lists the sockets once and closes from that list (issue 17, item
// 10, for the kernel's list as for HAProxy's): one dump, then one request
// per close.
func TestKernelCloserListsOncePerRun(t *testing.T) {
	t.Parallel()
	k, requests, left := kernelCloserOn(t, 5)
	for i := range 3 {
		if closed, err := k.Close(context.Background(), 1, "drain"); closed != 1 || err != nil {
			t.Fatalf("close %d = %d, %v; want 1, nil", i, closed, err)
		}
	}
	if got := requests.Load(); got != 4 {
		t.Errorf("netlink requests for 3 closes of one = %d, want 4 (one listing, three closes)", got)
	}
	if n := left(); n != 2 {
		t.Errorf("connections left = %d, want 2", n)
	}
}

// TestKernelCloserSkipsSocketsGoneSinceTheListing closes the sockets the
// list still holds by other means first: the closer skips them and lists
// again, rather than counting them or giving up.
func TestKernelCloserSkipsSocketsGoneSinceTheListing(t *testing.T) {
	t.Parallel()
	k, _, left := kernelCloserOn(t, 4)
	if closed, err := k.Close(context.Background(), 1, "drain"); closed != 1 || err != nil {
		t.Fatalf("Close(1) = %d, %v", closed, err)
	}
	// Close the three the list holds behind the closer's back.
	other := &KernelCloser{ports: k.ports, turn: make(chan struct{}, 1)}
	if closed, err := other.Close(context.Background(), 3, "drain"); closed != 3 || err != nil {
		t.Fatalf("the other closer's Close(3) = %d, %v", closed, err)
	}
	if closed, err := k.Close(context.Background(), 2, "drain"); closed != 0 || !errors.Is(err, ErrNoSockets) {
		t.Errorf("Close(2) after the listed sockets went = %d, %v; want 0, ErrNoSockets", closed, err)
	}
	if n := left(); n != 0 {
		t.Errorf("connections left = %d, want 0", n)
	}
}

func TestKernelCloserNeedsPorts(t *testing.T) {
	t.Parallel()
	if _, err := NewKernelCloser(nil); err == nil {
		t.Error("NewKernelCloser(no ports) = nil error, want a refusal: it would close every service's connections")
	}
}
