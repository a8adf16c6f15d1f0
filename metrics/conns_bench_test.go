package metrics

import (
	"context"
	"net"
	"slices"
	"testing"
)

// BenchmarkConnsCount counts benchConns established loopback connections on
// one port, through netlink sock_diag and through the procfs fallback.
// bench/conns (make bench-conns) does the same at 100,000 connections
// against ss and gopsutil.
func BenchmarkConnsCount(b *testing.B) {
	const benchConns = 2000
	ln := benchListen(b)
	benchDial(b, ln, benchConns)
	p := port(ln)
	for _, tc := range []struct {
		name      string
		noNetlink bool
		want      string
	}{
		{"netlink", false, MethodNetlink},
		{"procfs", true, MethodProc},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := &Conns{Ports: []uint16{p}}
			c.noNetlink.Store(tc.noNetlink)
			ctx := context.Background()
			// A table read in several chunks can see a socket twice or
			// miss one when other sockets of the host come and go
			// meanwhile: one exact count in a few is the sanity check.
			var counts []int
			for len(counts) < 5 && !slices.Contains(counts, benchConns) {
				got, err := c.Count(ctx)
				if err != nil {
					b.Fatal(err)
				}
				counts = append(counts, got.Established)
			}
			if !slices.Contains(counts, benchConns) || c.Method() != tc.want {
				b.Fatalf("Count = %v via %s, want %d via %s", counts, c.Method(), benchConns, tc.want)
			}
			for b.Loop() {
				if _, err := c.Count(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(benchConns, "conns")
		})
	}
}

// benchListen listens on loopback and accepts, holding the connections until
// the benchmark ends.
func benchListen(tb testing.TB) net.Listener {
	tb.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var accepted []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted = append(accepted, c)
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range accepted {
			c.Close()
		}
	})
	return ln
}

// benchDial opens n connections to ln, closed when the benchmark ends.
func benchDial(tb testing.TB, ln net.Listener, n int) {
	tb.Helper()
	conns := make([]net.Conn, 0, n)
	tb.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			tb.Fatal(err)
		}
		conns = append(conns, c)
	}
}
