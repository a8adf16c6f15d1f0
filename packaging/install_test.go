//go:build packaging

package packaging

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hafeed/hafeed/internal/testutil"
)

// How long to wait for READY=1 from the agent, and the WATCHDOG_USEC the
// test gives it (systemd's convention: keep-alives at least every half).
const (
	readyTimeout = 10 * time.Second
	watchdogUsec = 2_000_000
)

// requireInstallAllowed skips the install test unless it was asked for:
// it changes the machine (dpkg -i creates the user hafeed and unit links;
// it purges them again). CI=true (CI runs as root on a scratch machine) or
// HAFEED_TEST_DPKG=1 turn it on; then it needs root.
func requireInstallAllowed(t *testing.T) {
	t.Helper()
	if os.Getenv("CI") != "true" && os.Getenv("HAFEED_TEST_DPKG") != "1" {
		t.Skip("SKIPPED, NOT PASSED: installing the .deb (dpkg -i, upgrade, remove, purge; creates the user hafeed) changes this machine, " +
			"so it runs only with CI=true or HAFEED_TEST_DPKG=1 (as root): postinst, the conffile handling and dpkg -r/-P are untested here")
	}
	if os.Geteuid() != 0 {
		t.Fatal("installing the .deb with dpkg -i needs root: run `sudo make test-packaging HAFEED_TEST_DPKG=1` on a scratch machine")
	}
}

// installedVersion is the version of the installed hafeed package, "" when
// none is (configured or only its config files left).
func installedVersion(t *testing.T) (version, status string) {
	t.Helper()
	res, err := run(t, time.Minute, nil, "dpkg-query", "--show", "--showformat=${Version}|${Status}", "hafeed")
	if err != nil {
		return "", "" // dpkg-query exits 1 for a package it never heard of
	}
	version, status, _ = strings.Cut(res.stdout, "|")
	if strings.HasSuffix(status, " not-installed") {
		return "", status
	}
	return version, status
}

// preflight refuses to touch a machine where hafeed is really installed,
// and purges what a previous run of this test left behind.
func preflight(t *testing.T) {
	t.Helper()
	if version, status := installedVersion(t); version != "" {
		if !strings.Contains(version, testMarker) {
			t.Fatalf("hafeed %s is installed on this machine (%s): this test installs and purges its own build, and will not replace it. Run it on a CI or scratch machine.", version, status)
		}
		t.Logf("purging hafeed %s (%s), left by an earlier run", version, status)
		mustRun(t, nil, "dpkg", "--purge", "hafeed")
	}
	if _, err := user.Lookup("hafeed"); err == nil {
		t.Fatal("a user hafeed exists but the hafeed package is not installed: this test checks that postinst creates it. Remove it (deluser --system hafeed) on this scratch machine, or run the test elsewhere.")
	}
	if exists(t, "/usr/bin/hafeed") {
		t.Fatal("/usr/bin/hafeed exists but belongs to no hafeed package: dpkg -i would overwrite it; remove it first")
	}
}

func dpkg(t *testing.T, args ...string) result {
	t.Helper()
	res, err := run(t, 2*time.Minute, []string{"DEBIAN_FRONTEND=noninteractive"}, "dpkg", args...)
	if err != nil {
		t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, res)
	}
	t.Logf("dpkg %s: %v", strings.Join(args, " "), res.took.Round(time.Millisecond))
	return res
}

// TestDebInstall installs the package with dpkg -i, checks what postinst
// did and what the agent can do as the unit's user, upgrades it over a
// changed conffile, removes it, and purges it.
//
// What it cannot test here (no systemd as PID 1): starting the unit, the
// sandbox as systemd applies it, the watchdog restart, systemctl reload.
// It runs the agent as the unit's user with the unit's directories and
// umask instead, and plays the service manager's part of the sd_notify
// protocol.
func TestDebInstall(t *testing.T) {
	requireInstallAllowed(t)
	requireTools(t, "dpkg", "dpkg-query", "setpriv", "systemd-analyze", "adduser")
	deb1, deb2 := buildDeb(t, version1), buildDeb(t, version2)
	preflight(t)
	t.Cleanup(func() {
		if version, _ := installedVersion(t); version != "" || exists(t, "/etc/hafeed/hafeed.yaml") {
			run(t, 2*time.Minute, nil, "dpkg", "--purge", "hafeed")
		}
		os.RemoveAll("/run/hafeed")
	})

	start := time.Now()
	dpkg(t, "--install", deb1)
	if version, status := installedVersion(t); version != debVersion1 || status != "install ok installed" {
		t.Fatalf("after dpkg -i: hafeed %q %q, want %s \"install ok installed\"", version, status, debVersion1)
	}

	// The binary, on PATH, with the version make deb embedded.
	if got := mustRun(t, nil, "hafeed", "version").stdout; got != "hafeed "+version1+"\n" {
		t.Errorf("hafeed version = %q, want %q", got, "hafeed "+version1+"\n")
	}
	// The installed conffile is what hafeed reads by default, and valid.
	if got := mustRun(t, nil, "hafeed", "config", "check").stdout; !strings.Contains(got, "/etc/hafeed/hafeed.yaml: configuration is valid") {
		t.Errorf("hafeed config check = %q, want /etc/hafeed/hafeed.yaml valid", got)
	}

	// The system user and group postinst created.
	u, err := user.Lookup("hafeed")
	if err != nil {
		t.Fatalf("no user hafeed after dpkg -i: %v", err)
	}
	g, err := user.LookupGroup("hafeed")
	if err != nil {
		t.Fatalf("no group hafeed after dpkg -i: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(g.Gid)
	if uid == 0 || uid >= 1000 || u.Gid != g.Gid || u.HomeDir != "/var/lib/hafeed" {
		t.Errorf("user hafeed: uid %d gid %s home %s, want a system uid (1..999), group hafeed (%s), home /var/lib/hafeed", uid, u.Gid, u.HomeDir, g.Gid)
	}
	passwd := mustRun(t, nil, "getent", "passwd", "hafeed").stdout
	if !strings.HasSuffix(strings.TrimSpace(passwd), ":/usr/sbin/nologin") {
		t.Errorf("user hafeed: %q, want the shell /usr/sbin/nologin", passwd)
	}
	groups := strings.Fields(mustRun(t, nil, "id", "-nG", "hafeed").stdout)
	if _, err := user.LookupGroup("haproxy"); err == nil {
		if !slices.Contains(groups, "haproxy") {
			t.Errorf("hafeed's groups %q: want haproxy too, for HAProxy's runtime socket", groups)
		}
	} else {
		t.Logf("no group haproxy on this machine: postinst's adding hafeed to it is untested (groups %q)", groups)
	}

	// The files, and the unit enabled (deb-systemd-helper works without a
	// running systemd: it makes the [Install] symlinks).
	for path, mode := range map[string]fs.FileMode{
		"/usr/bin/hafeed":                                            0o755,
		"/usr/lib/systemd/system/hafeed.service":                     0o644,
		"/etc/hafeed/hafeed.yaml":                                    0o644,
		"/usr/share/bash-completion/completions/hafeed":              0o644,
		"/usr/share/zsh/vendor-completions/_hafeed":                  0o644,
		"/usr/share/fish/vendor_completions.d/hafeed.fish":           0o644,
		"/usr/share/doc/hafeed/examples/hafeed-drain.conf":           0o644,
		"/etc/systemd/system/multi-user.target.wants/hafeed.service": fs.ModeSymlink,
	} {
		fi, err := os.Lstat(path)
		switch {
		case err != nil:
			t.Errorf("after dpkg -i: %v", err)
		case mode == fs.ModeSymlink && fi.Mode()&fs.ModeSymlink == 0:
			t.Errorf("%s is not a symlink (the unit is not enabled)", path)
		case mode != fs.ModeSymlink && fi.Mode() != mode:
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), mode)
		}
	}
	// The unit as installed, with the installed binary.
	if out, err := verifyUnits(t, "", "/usr/lib/systemd/system/hafeed.service"); err != nil || out != "" {
		t.Errorf("systemd-analyze verify on the installed unit: %v\n%s", err, out)
	}
	if score, band, _ := securityScore(t, "/usr/lib/systemd/system/hafeed.service"); score > maxExposure {
		t.Errorf("installed unit: exposure %.1f %s, want %.1f or better", score, band, maxExposure)
	}
	// The service user can read its config.
	if res, err := run(t, time.Minute, nil, "setpriv", "--reuid=hafeed", "--regid=hafeed", "--init-groups", "hafeed", "config", "check"); err != nil {
		t.Errorf("hafeed config check as the user hafeed: %v\n%s", err, res)
	}
	t.Logf("dpkg -i and checks: %v", time.Since(start).Round(time.Millisecond))

	t.Run("agent as the unit runs it", func(t *testing.T) { testAgentAsUnit(t, gid) })

	// Upgrade over a changed conffile: dpkg keeps the administrator's file
	// (the package's is the same in both versions, so no prompt).
	const local = "\n# changed by packaging_test: must survive upgrades and dpkg -r\n"
	f, err := os.OpenFile("/etc/hafeed/hafeed.yaml", os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(local); err != nil {
		t.Fatal(err)
	}
	f.Close()
	dpkg(t, "--install", deb2)
	if version, status := installedVersion(t); version != debVersion2 || status != "install ok installed" {
		t.Errorf("after the upgrade: hafeed %q %q, want %s \"install ok installed\"", version, status, debVersion2)
	}
	if got := mustRun(t, nil, "hafeed", "version").stdout; got != "hafeed "+version2+"\n" {
		t.Errorf("after the upgrade: hafeed version = %q, want %q", got, "hafeed "+version2+"\n")
	}
	if !strings.HasSuffix(readFile(t, "/etc/hafeed/hafeed.yaml"), local) {
		t.Errorf("the upgrade replaced the changed /etc/hafeed/hafeed.yaml")
	}
	for _, suffix := range []string{".dpkg-new", ".dpkg-dist", ".dpkg-old"} {
		if exists(t, "/etc/hafeed/hafeed.yaml"+suffix) {
			t.Errorf("/etc/hafeed/hafeed.yaml%s after an upgrade that did not change the conffile", suffix)
		}
	}
	mustRun(t, nil, "hafeed", "config", "check")
	if !exists(t, "/var/lib/hafeed/state.json") {
		t.Errorf("the upgrade lost /var/lib/hafeed/state.json (the drained state)")
	}
	if !exists(t, "/etc/systemd/system/multi-user.target.wants/hafeed.service") {
		t.Errorf("the upgrade disabled the unit")
	}

	// dpkg -r: the program goes, the config and the user stay.
	dpkg(t, "--remove", "hafeed")
	if _, status := installedVersion(t); status != "deinstall ok config-files" {
		t.Errorf("after dpkg -r: status %q, want \"deinstall ok config-files\"", status)
	}
	for _, path := range []string{"/usr/bin/hafeed", "/usr/lib/systemd/system/hafeed.service",
		"/usr/share/bash-completion/completions/hafeed", "/usr/share/zsh/vendor-completions/_hafeed",
		"/usr/share/fish/vendor_completions.d/hafeed.fish", "/usr/share/doc/hafeed"} {
		if exists(t, path) {
			t.Errorf("%s is still there after dpkg -r", path)
		}
	}
	// As with dh_installsystemd: the enablement symlink stays until purge
	// (a reinstall finds the unit as enabled or disabled as it was), and
	// the unit is masked meanwhile.
	for _, path := range []string{"/etc/systemd/system/multi-user.target.wants/hafeed.service", "/etc/systemd/system/hafeed.service"} {
		if target, err := os.Readlink(path); err == nil {
			t.Logf("after dpkg -r: %s -> %s (until purge)", path, target)
		}
	}
	if !strings.HasSuffix(readFile(t, "/etc/hafeed/hafeed.yaml"), local) {
		t.Errorf("dpkg -r removed or replaced the conffile; it must stay until purge")
	}
	if _, err := user.Lookup("hafeed"); err != nil {
		t.Errorf("dpkg -r removed the user hafeed; it stays until purge: %v", err)
	}

	// dpkg -P: nothing is left.
	dpkg(t, "--purge", "hafeed")
	if version, status := installedVersion(t); version != "" || (status != "" && !strings.HasSuffix(status, "not-installed")) {
		t.Errorf("after dpkg -P: hafeed %q %q, want not installed", version, status)
	}
	for _, path := range []string{"/etc/hafeed", "/var/lib/hafeed", "/run/hafeed", "/etc/systemd/system/hafeed.service"} {
		if exists(t, path) {
			t.Errorf("%s is still there after dpkg -P", path)
		}
	}
	if _, err := user.Lookup("hafeed"); err == nil {
		t.Errorf("the user hafeed is still there after dpkg -P")
	}
	if _, err := user.LookupGroup("hafeed"); err == nil {
		t.Errorf("the group hafeed is still there after dpkg -P")
	}
	if strings.Contains(readFile(t, "/etc/group"), "hafeed") {
		t.Errorf("/etc/group still names hafeed after dpkg -P")
	}
	for _, dir := range []string{"/etc/systemd/system", "/var/lib/systemd/deb-systemd-helper-enabled", "/var/lib/systemd/deb-systemd-helper-masked"} {
		filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && strings.Contains(d.Name(), "hafeed") {
				t.Errorf("%s is still there after dpkg -P", path)
			}
			return nil
		})
	}
	t.Logf("install, upgrade, remove, purge: %v", time.Since(start).Round(time.Millisecond))
}

// testAgentAsUnit runs the installed agent the way hafeed.service does,
// short of systemd itself: as the user hafeed with its groups, umask 0077,
// no capabilities, no new privileges, in the RuntimeDirectory= and
// StateDirectory= systemd would make, with NOTIFY_SOCKET and WATCHDOG_USEC.
// It checks the sd_notify contract Type=notify relies on, and that root and
// members of group hafeed, but no one else, can drive the agent.
func testAgentAsUnit(t *testing.T, gid int) {
	for _, dir := range []string{"/run/hafeed", "/var/lib/hafeed"} {
		os.RemoveAll(dir)
		if err := os.Mkdir(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		mustRun(t, nil, "chown", "hafeed:hafeed", dir)
	}
	port := testutil.FreePort(t)

	// First start: no state yet. Drain through an operator, then stop.
	a := startAgent(t, port)
	notify := a.waitReady(t)
	if notify {
		if reply, err := agentCheck(port); err != nil {
			t.Errorf("agent-check right after READY=1: %v (READY=1 must come after the port listens)", err)
		} else {
			t.Logf("agent-check reply after READY=1: %q", reply)
		}
		a.checkWatchdog(t)
	}
	operator := []string{"setpriv", "--reuid=65534", "--regid=65534", "--groups=" + strconv.Itoa(gid), "/usr/bin/hafeed"}
	outsider := []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/hafeed"}
	if res, err := run(t, time.Minute, nil, "hafeed", "status"); err != nil {
		t.Errorf("hafeed status as root: %v\n%s", err, res)
	}
	if res, err := run(t, time.Minute, nil, operator[0], append(operator[1:], "status")...); err != nil {
		t.Errorf("hafeed status as a member of group hafeed: %v\n%s", err, res)
	}
	if res, err := run(t, time.Minute, nil, outsider[0], append(outsider[1:], "status")...); err == nil || !strings.Contains(res.stderr, "permission denied") {
		t.Errorf("hafeed status as a user outside group hafeed: exit %d (%v), want a failure saying permission denied\n%s", res.code, err, res)
	}
	if res, err := run(t, time.Minute, nil, operator[0], append(operator[1:], "drain")...); err != nil {
		t.Errorf("hafeed drain as a member of group hafeed: %v\n%s", err, res)
	}
	checkOwner(t, "/run/hafeed/control.sock", fs.ModeSocket|0o660)
	checkOwner(t, "/var/lib/hafeed/state.json", 0o640)
	a.stop(t, notify)

	// Second start: the drained state is loaded before READY=1, so the very
	// first agent-check reply already says drain.
	a = startAgent(t, port)
	if a.waitReady(t) {
		reply, err := agentCheck(port)
		if err != nil || !strings.Contains(reply, "drain") {
			t.Errorf("agent-check right after READY=1 with a drained state: %q, %v; want drain (the state loads before READY=1)", reply, err)
		}
	}
	if res, err := run(t, time.Minute, nil, operator[0], append(operator[1:], "ready")...); err != nil {
		t.Errorf("hafeed ready as a member of group hafeed: %v\n%s", err, res)
	}
	a.stop(t, notify)
}

// agentCheck reads one agent-check reply, as HAProxy does.
func agentCheck(port int) (string, error) {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func checkOwner(t *testing.T, path string, mode fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Errorf("%v", err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	u, _ := user.LookupId(strconv.Itoa(int(st.Uid)))
	g, _ := user.LookupGroupId(strconv.Itoa(int(st.Gid)))
	if fi.Mode() != mode || u == nil || u.Username != "hafeed" || g == nil || g.Name != "hafeed" {
		t.Errorf("%s: %v uid %d gid %d, want %v hafeed:hafeed", path, fi.Mode(), st.Uid, st.Gid, mode)
	}
}

// notifyMsg is one sd_notify datagram and the PID the kernel says sent it.
type notifyMsg struct {
	pid    int32
	fields map[string]string
	at     time.Time
}

type agentProc struct {
	cmd    *exec.Cmd
	done   chan error
	conn   *net.UnixConn
	mu     sync.Mutex
	msgs   []notifyMsg
	ready  time.Time
	output *lockedBuffer // the agent's log
}

// startAgent starts /usr/bin/hafeed run as the unit would, listening for
// its notifications on a socket like systemd's /run/systemd/notify.
func startAgent(t *testing.T, port int) *agentProc {
	t.Helper()
	dir, err := os.MkdirTemp("", "hafeed-notify")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	path := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o666)
	rc, _ := conn.SyscallConn()
	rc.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1) })
	if err != nil {
		t.Fatal(err)
	}

	a := &agentProc{conn: conn, done: make(chan error, 1), output: &lockedBuffer{}}
	// exec keeps the PID: the agent is the "main process" NotifyAccess=main
	// accepts notifications from.
	a.cmd = exec.Command("sh", "-c", `umask 0077; exec setpriv --reuid=hafeed --regid=hafeed --init-groups --no-new-privs --bounding-set=-all --inh-caps=-all "$@"`, "sh",
		"/usr/bin/hafeed", "run", "--agent-listen", fmt.Sprintf("127.0.0.1:%d", port), "--log-format", "json")
	a.cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "NOTIFY_SOCKET=" + path, "WATCHDOG_USEC=" + strconv.Itoa(watchdogUsec)}
	a.cmd.Stdout, a.cmd.Stderr = a.output, a.output
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.done <- a.cmd.Wait() }()
	t.Cleanup(func() {
		a.cmd.Process.Kill()
		conn.Close()
	})
	go a.receive()
	return a
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func (a *agentProc) receive() {
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	for {
		n, oobn, _, _, err := a.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		msg := notifyMsg{pid: -1, fields: map[string]string{}, at: time.Now()}
		if scms, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, scm := range scms {
				if cred, err := unix.ParseUnixCredentials(&scm); err == nil {
					msg.pid = cred.Pid
				}
			}
		}
		for _, line := range strings.Split(string(buf[:n]), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				msg.fields[k] = v
			}
		}
		a.mu.Lock()
		a.msgs = append(a.msgs, msg)
		a.mu.Unlock()
	}
}

// find returns the messages with key=value so far, from the agent's PID.
func (a *agentProc) find(t *testing.T, key, value string) []notifyMsg {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []notifyMsg
	for _, m := range a.msgs {
		if m.fields[key] != value {
			continue
		}
		if int(m.pid) != a.cmd.Process.Pid {
			t.Errorf("%s=%s came from PID %d, not the main process %d: NotifyAccess=main would drop it", key, value, m.pid, a.cmd.Process.Pid)
		}
		out = append(out, m)
	}
	return out
}

// waitReady waits for READY=1 and says whether it came. Without it (an
// agent without sd_notify) it fails the test and waits for the control
// socket instead, so that the other checks still run.
func (a *agentProc) waitReady(t *testing.T) bool {
	t.Helper()
	_, err := testutil.Wait(readyTimeout, func() error {
		if m := a.find(t, "READY", "1"); len(m) > 0 {
			a.ready = m[0].at
			return nil
		}
		select {
		case err := <-a.done:
			t.Fatalf("the agent exited before READY=1: %v\n%s", err, a.output.String())
		default:
		}
		return errors.New("no READY=1")
	})
	if err == nil {
		return true
	}
	t.Errorf("no READY=1 on NOTIFY_SOCKET within %v: deploy/hafeed.service is Type=notify, so systemd would kill this agent after TimeoutStartSec. "+
		"The agent must call daemon.SdNotify(false, daemon.SdNotifyReady) (coreos/go-systemd) once the state is loaded and the ports listen.", readyTimeout)
	// The checks that follow say what is missing if the socket never comes.
	testutil.Wait(5*time.Second, func() error {
		if exists(t, "/run/hafeed/control.sock") {
			return nil
		}
		return errors.New("no control socket")
	})
	return false
}

// checkWatchdog expects WATCHDOG=1 keep-alives well within WATCHDOG_USEC.
func (a *agentProc) checkWatchdog(t *testing.T) {
	t.Helper()
	period := time.Duration(watchdogUsec) * time.Microsecond
	time.Sleep(2*period + period/4)
	pings := a.find(t, "WATCHDOG", "1")
	if len(pings) < 2 {
		t.Errorf("%d WATCHDOG=1 in %v with WATCHDOG_USEC=%d: WatchdogSec= would kill this agent. "+
			"The sampling loop must send daemon.SdNotify(false, daemon.SdNotifyWatchdog) at least every WATCHDOG_USEC/2.", len(pings), 2*period, watchdogUsec)
		return
	}
	prev := a.ready
	for _, p := range pings {
		if gap := p.at.Sub(prev); gap > period {
			t.Errorf("WATCHDOG=1 keep-alives %v apart, more than WATCHDOG_USEC (%v)", gap, period)
		}
		prev = p.at
	}
	t.Logf("%d WATCHDOG=1 in %v after READY=1", len(pings), time.Since(a.ready).Round(time.Millisecond))
}

// stop sends SIGTERM as systemd does and expects STOPPING=1 and exit 0.
func (a *agentProc) stop(t *testing.T, notify bool) {
	t.Helper()
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-a.done:
		if err != nil {
			t.Errorf("the agent exited with %v on SIGTERM, want 0 (Restart=on-failure would restart it)\n%s", err, a.output.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the agent did not stop within TimeoutStopSec (20s) of SIGTERM\n%s", a.output.String())
	}
	time.Sleep(50 * time.Millisecond) // the last datagram, if any, in flight
	if notify && len(a.find(t, "STOPPING", "1")) == 0 {
		t.Errorf("no STOPPING=1 on SIGTERM: the agent should announce that it stops (daemon.SdNotify(false, daemon.SdNotifyStopping))")
	}
	if exists(t, "/run/hafeed/control.sock") {
		t.Errorf("/run/hafeed/control.sock is still there after the agent stopped")
	}
}
