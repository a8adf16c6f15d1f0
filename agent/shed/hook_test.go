package shed

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	hook "github.com/hafeed/hafeed/shed"
)

// TestHookCloserBoundsClosed checks that a hook claiming to have closed
// fewer than none, or more than it was asked, counts as what it could have
// closed, with an error naming the bad value (issue 17, item 9:
// {"closed": -1000} wrapped hafeed_shed_connections_total to 1.8e19).
func TestHookCloserBoundsClosed(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		reply string
		want  int
	}{
		{`{"closed": -1000}`, 0},
		{`{"closed": 8}`, 3},
		{`{"closed": 2}`, 2},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(tt.reply)) }))
		var tally Tally
		c := tally.Counted(NewHookCloser(srv.URL))
		got, err := c.Close(context.Background(), 3, hook.ReasonDrain)
		srv.Close()
		bad := tt.want != 2
		if got != tt.want || (err != nil) != bad || (bad && !strings.Contains(err.Error(), "when asked for 3")) {
			t.Errorf("hook answering %s to a request for 3 = %d, %v; want %d and an error only for a bad count", tt.reply, got, err, tt.want)
		}
		if total := tally.Totals()[hook.ReasonDrain]; total != uint64(tt.want) {
			t.Errorf("hook answering %s: tally %d, want %d", tt.reply, total, tt.want)
		}
	}
}

// TestHookCloserQuotesLittleOfAnErrorBody checks that an error quotes at
// most a short prefix of the hook's answer (issue 17, item 11: 64 KiB
// bodies went into every log line and into status, 1.3 MB/s of logs).
func TestHookCloserQuotesLittleOfAnErrorBody(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("é", 32*1024) // 64 KiB, two bytes a character
	for _, status := range []int{http.StatusInternalServerError, http.StatusOK} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(status)
			w.Write([]byte(big))
		}))
		_, err := NewHookCloser(srv.URL).Close(context.Background(), 1, hook.ReasonDrain)
		srv.Close()
		if err == nil || len(err.Error()) > 400+len(srv.URL) || !strings.Contains(err.Error(), "(65536 bytes)") {
			t.Errorf("status %d with a 64 KiB body: error of %d bytes %.120q; want under 400 bytes saying the body's length", status, len(err.Error()), err)
		}
		if err != nil && strings.Contains(err.Error(), "\\x") {
			t.Errorf("status %d: the quoted prefix cut a character in two: %.300q", status, err)
		}
	}
}

// TestHookCloserFollowsNoRedirect checks that a hook answering with a
// redirect to another host is not followed there, and that the error says
// what to set (issue 17, item 11: redirects were followed to any host,
// and a 307 re-POSTed up to 10 times).
func TestHookCloserFollowsNoRedirect(t *testing.T) {
	t.Parallel()
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		elsewhere.Add(1)
		w.Write([]byte(`{"closed": 1}`))
	}))
	defer other.Close()
	for _, code := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+"/steal", code)
		}))
		n, err := NewHookCloser(srv.URL).Close(context.Background(), 1, hook.ReasonDrain)
		srv.Close()
		if n != 0 || err == nil || !strings.Contains(err.Error(), "set shed.hook_url") {
			t.Errorf("hook redirecting with %d = %d, %v; want 0 and an error saying to set shed.hook_url", code, n, err)
		}
	}
	if got := elsewhere.Load(); got != 0 {
		t.Errorf("the host redirected to got %d requests, want none", got)
	}
}
