package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hafeed/hafeed/internal/testutil"
	"github.com/hafeed/hafeed/shed"
)

// hookConfig is the hafeed config of a host whose application answers the
// shed hook; the runtime endpoint pushes the drain at once, so that no
// client shed at the start lands on the host again.
const hookConfig = `
sources:
  cpu: none
  memory: none
policy:
  blackout: 0s
haproxy:
  - runtime: unix://{{.Sock}}
    backend: ws
    server: {{.Server}}
shed:
  via: hook
  hook_url: http://{{.Hook}}/hafeed/shed
`

// npmExample copies examples/<name> into a temp folder and installs its
// locked dependencies there with npm ci, from the npm registry (or npm's
// cache), so that the tree stays untouched.
func npmExample(t *testing.T, name string) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not on PATH: the examples/%s test needs Node.js 18 or later and npm (apt-get install nodejs npm)", tool, name)
		}
	}
	src := filepath.Join("..", "examples", name)
	dir := t.TempDir()
	files, err := filepath.Glob(filepath.Join(src, "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if fi, err := os.Stat(f); err != nil || fi.IsDir() {
			continue // node_modules of a manual run
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ci := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--prefer-offline")
	ci.Dir = dir
	if out, err := ci.CombinedOutput(); err != nil {
		t.Fatalf("npm ci for examples/%s: %v (does this machine reach the npm registry, or have the packages in npm's cache?)\n%s", name, err, out)
	}
	return dir
}

// nodeProc is a Node process of an example, stopped when the test ends.
type nodeProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	out    *syncBuffer
	stdin  io.WriteCloser
	stdout *bufio.Reader
	pipe   *os.File // under stdout, for read deadlines
	exited chan struct{}
}

// startNode runs node with args in dir. With pipe, stdin and stdout are
// the test's, for client.js's stats; otherwise both go to the log.
func startNode(t *testing.T, dir string, env []string, pipe bool, args ...string) *nodeProc {
	t.Helper()
	p := &nodeProc{t: t, cmd: exec.Command("node", args...), out: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = p.out
	if pipe {
		in, err := p.cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := p.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		p.stdin, p.pipe, p.stdout = in, out.(*os.File), bufio.NewReader(out)
	} else {
		p.cmd.Stdout = p.out
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			p.cmd.Process.Kill()
			testutil.Recv(t, p.exited, 10*time.Second, "the hook's node process to exit after SIGKILL")
		}
	})
	return p
}

// syncBuffer is a bytes buffer safe for a process's writes and the test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// clientStats is what the examples' client.js reports.
type clientStats struct {
	Opens       int            `json:"opens"`
	Shed        int            `json:"shed"`
	OtherCloses int            `json:"otherCloses"`
	Errors      int            `json:"errors"`
	Moved       int            `json:"moved"`
	BackToSame  int            `json:"backToSame"`
	Connected   int            `json:"connected"`
	PerHost     map[string]int `json:"perHost"`
}

func (p *nodeProc) stats() clientStats {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, "stats\n"); err != nil {
		p.t.Fatalf("asking client.js for stats: %v\n%s", err, p.out)
	}
	// A client.js that stops answering fails the test instead of hanging it.
	if err := p.pipe.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		p.t.Fatalf("client.js stdout: %v", err)
	}
	line, err := p.stdout.ReadString('\n')
	if err != nil {
		p.t.Fatalf("reading client.js stats: %v\n%s", err, p.out)
	}
	var s clientStats
	decodeJSON(p.t, line, &s)
	return s
}

// awaitStats polls client.js until cond holds, for limit at most.
func (p *nodeProc) awaitStats(what string, limit time.Duration, cond func(clientStats) bool) clientStats {
	p.t.Helper()
	var s clientStats
	testutil.Poll(p.t, limit, "clients: "+what, func() error {
		if s = p.stats(); !cond(s) {
			return fmt.Errorf("%+v\n%s", s, p.out)
		}
		return nil
	})
	return s
}

// TestNodeShedHook drains one of three Node servers of each example with
// hafeed drain --wait --shed-rate: the server's hook closes every client
// on it in the example's documented way, and the clients, real ones of the
// example's library, reconnect through HAProxy onto the other two.
func TestNodeShedHook(t *testing.T) {
	t.Parallel()
	for _, example := range []string{"node-ws", "node-socketio"} {
		t.Run(example, func(t *testing.T) {
			t.Parallel()
			testNodeShedHook(t, example)
		})
	}
}

func testNodeShedHook(t *testing.T, example string) {
	const hosts, clients = 3, 60
	dir := npmExample(t, example)
	hp := newHAProxy(t)
	var servers []haproxyServer
	var agents []*hafeed
	var apps []*nodeProc
	for i := range hosts {
		name := fmt.Sprintf("ws%d", i+1)
		listen, hook := testutil.FreeAddr(t), testutil.FreeAddr(t)
		apps = append(apps, startNode(t, dir, []string{"LISTEN=" + listen, "HOOK_LISTEN=" + hook, "NAME=" + name}, false, "server.js"))
		awaitHook(t, hook, apps[i])
		h := startHafeed(t, hafeedOptions{
			config:  hookConfig,
			appPort: atoi(t, listen[strings.LastIndexByte(listen, ':')+1:]),
			vars:    map[string]string{"Sock": hp.sock, "Server": name, "Hook": hook},
		})
		agents = append(agents, h)
		servers = append(servers, haproxyServer{Name: name, AppPort: h.appPort, AgentPort: h.agentPort()})
	}
	checkHookProtocol(t, "http://"+agents[2].vars["Hook"]+"/hafeed/shed")
	hp.start(agentInter, servers...)
	for _, s := range servers {
		hp.waitPolled(s.Name)
	}

	client := startNode(t, dir, nil, true, "client.js", hp.frontend, fmt.Sprint(clients))
	before := client.awaitStats("every client connected", 20*time.Second, func(s clientStats) bool { return s.Connected == clients })
	onDrained := before.PerHost["ws1"]
	if onDrained == 0 {
		t.Fatalf("no client on ws1 to shed: %+v", before)
	}
	if scur := atoi(t, hp.stat("ws1")["scur"]); scur != onDrained {
		t.Errorf("HAProxy scur of ws1 %d, the clients count %d on it", scur, onDrained)
	}

	start := time.Now()
	out, code := agents[0].cli("drain", "--wait", "--shed-rate", "40", "--timeout", "30s")
	took := time.Since(start)
	if code != 0 {
		t.Fatalf("hafeed drain --wait: exit %d: %s\n%s\n%s", code, out, agents[0].logs(), apps[0].out)
	}
	if got := atoi(t, hp.stat("ws1")["scur"]); got != 0 {
		t.Errorf("HAProxy scur of ws1 = %d after drain --wait, want 0", got)
	}
	after := client.awaitStats("every client reconnected", 20*time.Second, func(s clientStats) bool {
		return s.Connected == clients && s.Moved+s.BackToSame == s.Shed
	})
	if after.Shed != onDrained || after.Moved != onDrained {
		t.Errorf("clients shed %d and moved %d, want each of the %d on ws1 shed once and moved", after.Shed, after.Moved, onDrained)
	}
	if after.BackToSame != 0 || after.PerHost["ws1"] != 0 {
		t.Errorf("%d shed clients came back to ws1, %d are on it, want none", after.BackToSame, after.PerHost["ws1"])
	}
	if after.OtherCloses != 0 || after.Opens != clients+onDrained {
		t.Errorf("clients saw %d other closes and %d opens, want 0 and %d", after.OtherCloses, after.Opens, clients+onDrained)
	}
	sum := 0
	for _, s := range servers[1:] {
		sum += atoi(t, hp.stat(s.Name)["scur"])
	}
	if sum != clients {
		t.Errorf("HAProxy scur of ws2 and ws3 = %d, want all %d clients", sum, clients)
	}
	t.Logf("FIGURE %s: drain --wait --shed-rate 40 moved %d of %d clients off ws1 in %v; clients now %v; HAProxy scur ws1=%s ws2=%s ws3=%s",
		example, onDrained, clients, took.Round(time.Millisecond), after.PerHost,
		hp.stat("ws1")["scur"], hp.stat("ws2")["scur"], hp.stat("ws3")["scur"])
}

// TestGoHookProtocol runs the protocol checks the Node examples pass
// against the Go package's hook, the reference implementation.
func TestGoHookProtocol(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(shed.Handler(&shed.Registry{}))
	defer srv.Close()
	checkHookProtocol(t, srv.URL+"/hafeed/shed")
}

// checkHookProtocol checks a hook with no connections against
// docs/SHED-HOOK.md: each answer's status, and its JSON body's fields.
func checkHookProtocol(t *testing.T, url string) {
	t.Helper()
	for _, tc := range []struct {
		method, contentType, body string
		status                    int
		want                      string // a JSON object the answer's body must equal
		allow                     bool   // the answer must carry Allow: GET, HEAD, POST
	}{
		{"GET", "", "", 200, `{"connections": 0}`, false},
		{"POST", "application/json", `{"count": 0, "reason": "drain"}`, 200, `{"closed": 0, "remaining": 0}`, false},
		{"POST", "application/json; charset=utf-8", `{"count": 5, "reason": "rebalance", "later": true}`, 200, `{"closed": 0, "remaining": 0}`, false},
		{"PUT", "application/json", `{"count": 1, "reason": "drain"}`, 405, "", true},
		{"POST", "text/plain", `{"count": 1, "reason": "drain"}`, 415, "", false},
		{"POST", "application/json", `{"count": 1, "reason": "` + strings.Repeat("x", 5000) + `"}`, 413, "", false},
		{"POST", "application/json", ``, 400, "", false},
		{"POST", "application/json", `[1]`, 400, "", false},
		{"POST", "application/json", `{"reason": "drain"}`, 400, "", false},
		{"POST", "application/json", `{"count": -1, "reason": "drain"}`, 400, "", false},
		{"POST", "application/json", `{"count": 1.5, "reason": "drain"}`, 400, "", false},
		{"POST", "application/json", `{"count": "1", "reason": "drain"}`, 400, "", false},
		{"POST", "application/json", `{"count": 1048577, "reason": "drain"}`, 400, "", false},
		{"POST", "application/json", `{"count": 1}`, 400, "", false},
		{"POST", "application/json", `{"count": 1, "reason": "because"}`, 400, "", false},
	} {
		req, err := http.NewRequest(tc.method, url, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		if tc.contentType != "" {
			req.Header.Set("Content-Type", tc.contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, url, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		what := fmt.Sprintf("%s %s %.60q", tc.method, tc.contentType, tc.body)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d (%s)", what, resp.StatusCode, tc.status, body)
			continue
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s: Content-Type %q, want application/json", what, ct)
		}
		if tc.allow && resp.Header.Get("Allow") != "GET, HEAD, POST" {
			t.Errorf("%s: Allow %q, want \"GET, HEAD, POST\"", what, resp.Header.Get("Allow"))
		}
		var got map[string]any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Errorf("%s: body %q is not a JSON object", what, body)
			continue
		}
		if tc.status != 200 {
			if msg, ok := got["error"].(string); !ok || msg == "" {
				t.Errorf("%s: error body %s, want {\"error\": \"text\"}", what, body)
			}
			continue
		}
		var want map[string]any
		json.Unmarshal([]byte(tc.want), &want)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: body (-want +got):\n%s", what, diff)
		}
	}
}

// awaitHook waits until the example's hook answers a count.
func awaitHook(t *testing.T, addr string, app *nodeProc) {
	t.Helper()
	err := awaitStarted(app.exited, func() bool {
		resp, err := http.Get("http://" + addr + "/hafeed/shed")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var c struct{ Connections *int }
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&c) == nil && c.Connections != nil
	})
	if err != nil {
		t.Fatalf("the example's hook on %s: %v\n%s", addr, err, app.out)
	}
}

// TestExampleHooksAreOne checks that the examples carry the same hook.js,
// as examples/README.md says, so that a fix reaches both.
func TestExampleHooksAreOne(t *testing.T) {
	t.Parallel()
	ws, err := os.ReadFile("../examples/node-ws/hook.js")
	if err != nil {
		t.Fatal(err)
	}
	sio, err := os.ReadFile("../examples/node-socketio/hook.js")
	if err != nil {
		t.Fatal(err)
	}
	if string(ws) != string(sio) {
		t.Error("examples/node-ws/hook.js and examples/node-socketio/hook.js differ: copy the fixed one over the other")
	}
}
