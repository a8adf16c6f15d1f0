package runtime

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/hafeed/hafeed/agent/config"
	"github.com/hafeed/hafeed/haproxy"
	"github.com/hafeed/hafeed/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitLimit bounds every wait in these tests; nothing should come close.
const waitLimit = 5 * time.Second

// TestEndpointWarnsOffLoopback checks the warning for a runtime API over
// TCP that is not on loopback: it has no authentication.
func TestEndpointWarnsOffLoopback(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		runtime string
		warn    bool
	}{
		{"tcp://10.0.0.5:9999", true},
		{"tcp://127.0.0.1:9999", false},
		{"tcp://[::1]:9999", false},
		{"unix:///run/haproxy/admin.sock", false},
	} {
		var buf bytes.Buffer
		_, err := NewEndpoint(config.HAProxyConfig{Runtime: tt.runtime}, EndpointOptions{}, zerolog.New(&buf))
		if err != nil {
			t.Fatalf("%s: %v", tt.runtime, err)
		}
		if got := strings.Contains(buf.String(), "no authentication"); got != tt.warn {
			t.Errorf("%s: warned %v, want %v (log %q)", tt.runtime, got, tt.warn, buf.String())
		}
	}
}

// fakeRuntime is an HAProxy runtime API on a Unix socket that answers
// "show info", "show servers state" from a table the test changes, and
// records every "set server" command.
type fakeRuntime struct {
	path string
	ln   net.Listener
	wg   sync.WaitGroup

	mu      sync.Mutex
	servers []string // "show servers state" rows
	sets    []string
	// sessions are "show sess" lines; shutdowns the ids shut down.
	sessions  []string
	shutdowns []string
	listings  int      // "show sess" commands answered
	gone      []string // sessions "shutdown session" finds gone
	// stats are "show stat" rows after statHeader.
	stats []string
}

// statHeader is the part of show stat's header the fake answers with.
const statHeader = "# pxname,svname,scur,status,weight,uweight,addr,lastchg,throttle"

// syncedSet is a Set of one endpoint on f, as the agent of 127.0.0.2 with
// port 8080 sees it, synced once: f's servers and rows are what it read.
// Its context ends with the test or after waitLimit.
func syncedSet(t *testing.T, f *fakeRuntime) (*Set, context.Context) {
	t.Helper()
	set, err := NewSet([]config.HAProxyConfig{{Runtime: "unix://" + f.path}}, EndpointOptions{
		Ports:    func() []uint16 { return []uint16{8080} },
		Wanted:   func() Desired { return Desired{Admin: haproxy.AdminReady, Gen: 1} },
		ListenIP: netip.MustParseAddr("127.0.0.2"),
	}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	if err := set.Endpoints()[0].sync(ctx, true); err != nil {
		t.Fatal(err)
	}
	return set, ctx
}

func startFakeRuntime(t *testing.T) *fakeRuntime {
	t.Helper()
	dir := testutil.ShortTempDir(t)
	f := &fakeRuntime{path: filepath.Join(dir, "admin.sock")}
	var err error
	if f.ln, err = net.Listen("unix", f.path); err != nil {
		t.Fatal(err)
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := f.ln.Accept()
			if err != nil {
				return
			}
			f.answer(c)
		}
	}()
	t.Cleanup(func() {
		f.ln.Close()
		f.wg.Wait()
	})
	return f
}

func (f *fakeRuntime) answer(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitLimit))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return
	}
	command := strings.TrimPrefix(strings.TrimSpace(line), "set severity-output number; ")
	io.WriteString(c, "\n") // set severity-output's empty answer
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case command == "show info":
		io.WriteString(c, "Name: HAProxy\nPid: 42\nUptime_sec: 10\n\n")
	case command == "show servers state":
		io.WriteString(c, "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_port\n"+
			strings.Join(f.servers, "\n")+"\n\n")
	case strings.HasPrefix(command, "show stat "):
		io.WriteString(c, statHeader+"\n"+strings.Join(f.stats, "\n")+"\n\n")
	case command == "show sess":
		f.listings++
		io.WriteString(c, strings.Join(f.sessions, "\n")+"\n\n")
	case strings.HasPrefix(command, "shutdown session "):
		id := strings.TrimPrefix(command, "shutdown session ")
		if slices.Contains(f.gone, id) {
			io.WriteString(c, "[3]: No such session (use 'show sess').\n\n")
			break
		}
		f.shutdowns = append(f.shutdowns, id)
		f.sessions = slices.DeleteFunc(f.sessions, func(s string) bool { return strings.HasPrefix(s, id+":") })
		io.WriteString(c, "\n")
	case strings.HasPrefix(command, "set server "):
		f.sets = append(f.sets, command)
		io.WriteString(c, "\n")
	default:
		io.WriteString(c, "Unknown command.\n\n")
	}
}

// setServers replaces the servers of backend ws: name, address, admin state.
func (f *fakeRuntime) setServers(rows ...[3]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.servers = nil
	for i, r := range rows {
		f.servers = append(f.servers, fmt.Sprintf("3 ws %d %s %s 2 %s 100 100 8080", i+1, r[0], r[1], r[2]))
	}
}

func (f *fakeRuntime) setCommands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sets)
}

// TestDiscoveryFollowsSlot moves this host (the agent-check listener's
// address, 127.0.0.2, port 8080) between servers as server-template slots
// do: the first look keeps the slot's admin state, a slot moved into gets
// this host's (even ready), and a host in no slot says so.
func TestDiscoveryFollowsSlot(t *testing.T) {
	t.Parallel()
	f := startFakeRuntime(t)
	wanted := Desired{Admin: haproxy.AdminReady, Gen: 1} // ready, not asked for: not pushed
	e, err := NewEndpoint(config.HAProxyConfig{Runtime: "unix://" + f.path}, EndpointOptions{
		Ports:    func() []uint16 { return []uint16{8080} },
		Wanted:   func() Desired { return wanted },
		ListenIP: netip.MustParseAddr("127.0.0.2"),
	}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// First look: ws1 is this host's; its drain, maybe an operator's, stays.
	f.setServers([3]string{"ws1", "127.0.0.2", "8"}, [3]string{"ws2", "192.0.2.7", "0"})
	if err := e.sync(ctx, true); err != nil {
		t.Fatal(err)
	}
	if got := e.Snapshot().Servers; !slices.Equal(got, []string{"ws/ws1"}) {
		t.Fatalf("servers %q, want [ws/ws1]", got)
	}
	if got := f.setCommands(); len(got) != 0 {
		t.Errorf("first look sent %q, want nothing", got)
	}

	// The host left and came back in ws3, carrying another host's drain;
	// ws1 is another host's now.
	f.setServers([3]string{"ws1", "192.0.2.9", "8"}, [3]string{"ws2", "192.0.2.7", "0"}, [3]string{"ws3", "127.0.0.2", "8"})
	if err := e.sync(ctx, true); err != nil {
		t.Fatal(err)
	}
	if got := e.Snapshot().Servers; !slices.Equal(got, []string{"ws/ws3"}) {
		t.Fatalf("servers %q after the move, want [ws/ws3]", got)
	}
	if diff := cmp.Diff([]string{"set server ws/ws3 state ready"}, f.setCommands()); diff != "" {
		t.Errorf("commands after the move (-want +got):\n%s", diff)
	}

	// A push goes to the slot the host is in at that moment.
	f.setServers([3]string{"ws2", "127.0.0.2", "0"})
	wanted = Desired{Admin: haproxy.AdminDrain, Gen: 2, Push: true}
	if err := e.PushNow(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.setCommands(); got[len(got)-1] != "set server ws/ws2 state drain" {
		t.Errorf("drain pushed with %q, want to ws/ws2", got[len(got)-1])
	}

	// Out of every slot: no servers, and an error that says so.
	f.setServers([3]string{"ws1", "192.0.2.9", "0"}, [3]string{"ws2", "-", "32"})
	if err := e.sync(ctx, true); !errors.Is(err, ErrNotInHAProxy) {
		t.Fatalf("sync with no slot: %v, want ErrNotInHAProxy", err)
	}
	if got := e.Snapshot().Servers; len(got) != 0 {
		t.Errorf("servers %q with no slot, want none", got)
	}
}
