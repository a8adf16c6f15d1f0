package e2e

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hafeed/hafeed/internal/testutil"
)

// TestReloadOnSIGHUP changes the policy in the config file and sends
// SIGHUP: HAProxy sees the new weight. An invalid file is then rejected
// and the running configuration stays.
func TestReloadOnSIGHUP(t *testing.T) {
	t.Parallel()
	a, h, hp := setup(t)
	a.connect(20)
	h.setUtil(0.25)
	hp.waitFor("ws1", 5*time.Second, "uweight 80", func(s serverState) bool { return s.UWeight == 80 })

	write := func(cfg string) {
		t.Helper()
		if err := os.WriteFile(h.config, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		h.cmd.Process.Signal(syscall.SIGHUP)
	}
	write(h.renderConfig(strings.Replace(loadConfig, "reference_capacity: 100", "reference_capacity: 160", 1)))
	took := hp.waitFor("ws1", 5*time.Second, "uweight 50 after reload", func(s serverState) bool { return s.UWeight == 50 })
	t.Logf("PROPAGATION SIGHUP reload to HAProxy weight: %v", took.Round(time.Millisecond))

	write("policy:\n  reference_capacity: -3\n  bogus: 1\n")
	testutil.Until(t, 5*time.Second, "'reload rejected' in the log after an invalid config", func() bool { return strings.Contains(h.logs(), "reload rejected") })
	if !strings.Contains(h.logs(), "policy.bogus") {
		t.Errorf("rejected reload does not name the bad key:\n%s", h.logs())
	}
	hp.holds("ws1", 5*agentInter, "uweight 50 with the previous configuration", func(s serverState) bool { return s.UWeight == 50 })
	if st := h.status(); st.Sample == nil || st.Sample.WeightPercent != 50 {
		t.Errorf("status after a rejected reload: %+v, want weight 50", st.Sample)
	}

	// A key that needs a restart keeps its running value, and status says so.
	write(h.renderConfig(strings.Replace(loadConfig, "reference_capacity: 100", "reference_capacity: 160", 1)) + "metrics:\n  listen: 127.0.0.1:0\n")
	testutil.Until(t, 5*time.Second, "status listing metrics.listen as waiting for a restart", func() bool {
		return slices.Equal(h.status().RestartNeeded, []string{"metrics.listen"})
	})
	if out, code := h.cli("status"); code != 0 || !regexp.MustCompile(`(?m)^restart needed +metrics\.listen changed`).MatchString(out) {
		t.Errorf("hafeed status = exit %d:\n%s\nwant a line saying metrics.listen waits for a restart", code, out)
	}
}
