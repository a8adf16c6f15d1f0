package haproxy

import (
	"bufio"
	"context"
	"errors"
	"net"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hafeed/hafeed/internal/testutil"
)

// floodMB is how much a flooding endpoint offers: the size of the reply
// that raised the agent's RSS to 1.1 GB (issue 11, item 8).
const floodMB = 200

// sessionLine is one well-formed "show sess" line, as HAProxy 2.6 prints it.
const sessionLine = "0x561777de79d0: proto=tcpv4 src=127.0.0.1:50652 fe=fe be=ws srv=ws1 ts=00 epoch=0 age=2m2s calls=3 rate=0 cpu=0 lat=0 rq[f=848000h,i=0,an=00h,rx=2m58s,wx=,ax=] rp[f=80048000h,i=0,an=00h,rx=2m58s,wx=,ax=] scf=[8,0h,fd=18] scb=[8,1h,fd=19] exp=2m58s rc=0 c_exp=\n"

// floodingHAProxy is a runtime API endpoint on a Unix socket that answers
// every command with the empty line of "set severity-output", then repeats
// chunk until it has written total bytes or the client has gone.
type floodingHAProxy struct {
	path  string
	chunk []byte
	total int64

	written atomic.Int64  // bytes written, over every connection
	done    chan struct{} // closed when the first connection's writing ended
}

func startFloodingHAProxy(tb testing.TB, chunk string, total int64) *floodingHAProxy {
	tb.Helper()
	f := &floodingHAProxy{
		path:  filepath.Join(testutil.ShortTempDir(tb), "flood.sock"),
		chunk: []byte(strings.Repeat(chunk, max(1, 64<<10/len(chunk)))),
		total: total,
		done:  make(chan struct{}),
	}
	ln, err := net.Listen("unix", f.path)
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var once sync.Once
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer once.Do(func() { close(f.done) })
				defer conn.Close()
				f.answer(conn)
			}()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return f
}

func (f *floodingHAProxy) answer(conn net.Conn) {
	_ = conn.SetDeadline(time.Now().Add(waitLimit))
	if _, err := bufio.NewReader(conn).ReadString('\n'); err != nil {
		return
	}
	if _, err := conn.Write([]byte("\n")); err != nil {
		return
	}
	for sent := int64(0); sent < f.total; {
		n, err := conn.Write(f.chunk[:min(int64(len(f.chunk)), f.total-sent)])
		sent += int64(n)
		f.written.Add(int64(n))
		if err != nil {
			return
		}
	}
}

// waitWritten waits until the flood's first connection stopped writing and
// returns how much it wrote.
func (f *floodingHAProxy) waitWritten(t *testing.T) int64 {
	t.Helper()
	select {
	case <-f.done:
	case <-time.After(waitLimit):
		t.Fatalf("the flooding endpoint was still writing after %v: the client did not stop reading", waitLimit)
	}
	return f.written.Load()
}

func TestRuntimeReplyLimits(t *testing.T) {
	t.Parallel()
	// A reader that stops at its limit leaves the writer at most the limit
	// plus what the socket buffers hold (a few hundred KiB on Linux).
	const slack = 8 << 20

	t.Run("small command", func(t *testing.T) {
		t.Parallel()
		f := startFloodingHAProxy(t, "Name: x\n", floodMB<<20)
		rt, err := NewRuntime(f.path)
		if err != nil {
			t.Fatal(err)
		}
		_, err = rt.Info(t.Context())
		want := "haproxy unix://" + f.path + ": show info: reply too large: more than 1 MiB, this command's limit; the rest was discarded"
		if !errors.Is(err, ErrReplyTooLarge) || err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Info() error = %v\nwant ErrReplyTooLarge starting %q", err, want)
		}
		if n := f.waitWritten(t); n > smallReplyBytes+slack {
			t.Errorf("the endpoint wrote %d MiB before the client stopped reading, want at most %d MiB", n>>20, (smallReplyBytes+slack)>>20)
		}
	})

	t.Run("table", func(t *testing.T) {
		t.Parallel()
		f := startFloodingHAProxy(t, "be,s1,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,100,1,0,0,0,0,0,0,,1,2,1,,0,,2,0,,0,,,,\n", floodMB<<20)
		rt, err := NewRuntime(f.path)
		if err != nil {
			t.Fatal(err)
		}
		rt.limits.table = 2 << 20
		_, err = rt.Stats(t.Context(), "")
		want := "haproxy unix://" + f.path + ": show stat: reply too large: more than 2 MiB, this command's limit"
		if !errors.Is(err, ErrReplyTooLarge) || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Stats() error = %v\nwant ErrReplyTooLarge starting %q", err, want)
		}
		if n := f.waitWritten(t); n > 2<<20+slack {
			t.Errorf("the endpoint wrote %d MiB before the client stopped reading", n>>20)
		}
	})

	t.Run("sessions stream", func(t *testing.T) {
		t.Parallel()
		f := startFloodingHAProxy(t, sessionLine, floodMB<<20)
		rt, err := NewRuntime(f.path)
		if err != nil {
			t.Fatal(err)
		}
		rt.limits.sessions = 1 << 20
		seen := 0
		err = rt.EachSession(t.Context(), func(s Session) error {
			if s.Backend != "ws" || s.Server != "ws1" {
				t.Errorf("session %+v, want ws/ws1", s)
			}
			seen++
			return nil
		})
		want := "haproxy unix://" + f.path + ": show sess: reply too large: more than 1 MiB, this command's limit"
		if !errors.Is(err, ErrReplyTooLarge) || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("EachSession() error = %v\nwant ErrReplyTooLarge starting %q", err, want)
		}
		// Every whole line under the limit was handed over as it came.
		if wantSeen := (1<<20 - 1) / len(sessionLine); seen != wantSeen {
			t.Errorf("EachSession() called fn %d times, want %d", seen, wantSeen)
		}
		if n := f.waitWritten(t); n > 1<<20+slack {
			t.Errorf("the endpoint wrote %d MiB before the client stopped reading", n>>20)
		}
	})

	t.Run("session line too long", func(t *testing.T) {
		t.Parallel()
		f := startFloodingHAProxy(t, "0x1: proto=tcpv4 "+strings.Repeat("x", 100<<10)+"\n", floodMB<<20)
		rt, err := NewRuntime(f.path)
		if err != nil {
			t.Fatal(err)
		}
		_, err = rt.Sessions(t.Context())
		want := "haproxy unix://" + f.path + ": show sess: a line longer than 64 KiB, this command's limit; the rest was discarded"
		if err == nil || err.Error() != want {
			t.Errorf("Sessions() error = %v\nwant %q", err, want)
		}
		if n := f.waitWritten(t); n > slack {
			t.Errorf("the endpoint wrote %d MiB before the client stopped reading", n>>20)
		}
	})

	t.Run("fn stops the stream", func(t *testing.T) {
		t.Parallel()
		f := startFloodingHAProxy(t, sessionLine, floodMB<<20)
		rt, err := NewRuntime(f.path)
		if err != nil {
			t.Fatal(err)
		}
		stop := errors.New("enough")
		seen := 0
		err = rt.EachSession(t.Context(), func(Session) error {
			seen++
			if seen == 3 {
				return stop
			}
			return nil
		})
		if err != stop || seen != 3 {
			t.Errorf("EachSession() = %v after %d sessions, want fn's error after 3", err, seen)
		}
		if n := f.waitWritten(t); n > slack {
			t.Errorf("the endpoint wrote %d MiB before the client stopped reading", n>>20)
		}
	})

	t.Run("exactly the limit", func(t *testing.T) {
		t.Parallel()
		// "\n" + "a\n" × 500: 1,001 bytes, the limit.
		f := startFloodingHAProxy(t, "a\n", 1000)
		rt, err := NewRuntime(f.path)
		if err != nil {
			t.Fatal(err)
		}
		rt.limits.small = 1001 // the flood's own "\n" and the 1,000 bytes
		out, err := rt.Execute(t.Context(), "show info")
		if err != nil || len(out) != 1000 {
			t.Errorf("Execute() = %d bytes, %v; want 1000 bytes and no error", len(out), err)
		}
		rt.limits.small = 1000
		_, err = rt.Execute(t.Context(), "show info")
		if !errors.Is(err, ErrReplyTooLarge) || !strings.Contains(err.Error(), "more than 1000 bytes") {
			t.Errorf("Execute() one byte over the limit: error = %v, want ErrReplyTooLarge naming 1000 bytes", err)
		}
	})
}

// BenchmarkRuntimeFlood measures the memory a 200 MB reply costs: heap-peak-MiB
// is the highest live heap seen while one command ran. Before replies were
// capped, "show info" held all 200 MB at once (RSS 1.1 GB in the agent).
func BenchmarkRuntimeFlood(b *testing.B) {
	b.Run("show info", func(b *testing.B) {
		f := startFloodingHAProxy(b, "Name: x\n", floodMB<<20)
		rt, err := NewRuntime(f.path)
		if err != nil {
			b.Fatal(err)
		}
		benchPeakHeap(b, func() error {
			_, err := rt.Info(context.Background())
			return err
		})
	})
	b.Run("show sess", func(b *testing.B) {
		f := startFloodingHAProxy(b, sessionLine, floodMB<<20)
		rt, err := NewRuntime(f.path, WithRuntimeTimeout(time.Minute))
		if err != nil {
			b.Fatal(err)
		}
		rt.limits.sessions = floodMB << 20 // read it all: the cost of streaming, not of stopping
		benchPeakHeap(b, func() error {
			n := 0
			err := rt.EachSession(context.Background(), func(Session) error { n++; return nil })
			if err == nil && n != floodMB<<20/len(sessionLine) {
				b.Errorf("streamed %d sessions, want %d", n, floodMB<<20/len(sessionLine))
			}
			return err
		})
	})
}

// benchPeakHeap runs op b.N times, sampling the live heap every few
// milliseconds, and reports the highest sample above the starting heap.
func benchPeakHeap(b *testing.B, op func() error) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	heap := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	runtime.GC()
	base := heap()
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if h := heap(); h > peak.Load() {
					peak.Store(h)
				}
			}
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := op(); err != nil && !errors.Is(err, ErrReplyTooLarge) {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	b.ReportMetric(float64(peak.Load()-min(base, peak.Load()))/(1<<20), "heap-peak-MiB")
}
