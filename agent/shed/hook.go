package shed

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/hafeed/hafeed/agent/config"
	hook "github.com/hafeed/hafeed/shed"
)

// HookCloser asks the application to close sockets through its shed hook
// (docs/SHED-HOOK.md): a POST of {"count": N, "reason": "..."} answered
// with {"closed": K}.
type HookCloser struct {
	url    string
	client *http.Client
}

// NewHookCloser is a closer that calls the hook at url.
func NewHookCloser(url string) *HookCloser {
	// The hook may take up to 5 s (hook.ShedTimeout) to answer. No
	// keep-alive: an idle connection to the application's port would count
	// as one the drain waits for. No redirect is followed: the hook is a
	// local endpoint the operator named, a redirect would send the POST
	// (re-sent on a 307) to wherever the answer points, and the operator
	// can write the final URL in shed.hook_url.
	return &HookCloser{url: url, client: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

// maxQuotedBody bounds what an error quotes of the hook's answer: it goes
// into every log line of a failing job and into status.
const maxQuotedBody = 256

// Close implements Closer. It returns at most n: a reply claiming more,
// or fewer than 0, is clamped and reported, so that a broken hook cannot
// skew the shed count.
func (h *HookCloser) Close(ctx context.Context, n int, reason string) (int, error) {
	body, _ := json.Marshal(hook.ShedRequest{Count: n, Reason: reason})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("shed hook %s: %w", h.url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64*1024))
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return 0, fmt.Errorf("shed hook %s: %s to %q: hafeed follows no redirect; set shed.hook_url to the hook's own URL", h.url, resp.Status, quote([]byte(resp.Header.Get("Location"))))
	case resp.StatusCode != http.StatusOK:
		return 0, fmt.Errorf("shed hook %s: %s: %s", h.url, resp.Status, quote(bytes.TrimSpace(data)))
	}
	var out hook.ShedResponse
	if err := json.Unmarshal(data, &out); err != nil {
		return 0, fmt.Errorf("shed hook %s: malformed reply %s: %v", h.url, quote(data), err)
	}
	if out.Closed < 0 || out.Closed > n {
		return min(max(out.Closed, 0), n), fmt.Errorf("shed hook %s: answered closed %d when asked for %d: counted as %d", h.url, out.Closed, n, min(max(out.Closed, 0), n))
	}
	return out.Closed, nil
}

// quote is b for an error message: quoted, and cut to maxQuotedBody bytes
// (on a character boundary) with the length it had.
func quote(b []byte) string {
	if len(b) <= maxQuotedBody {
		return fmt.Sprintf("%q", b)
	}
	cut := maxQuotedBody
	for cut > 0 && !utf8.RuneStart(b[cut]) {
		cut--
	}
	return fmt.Sprintf("%q… (%d bytes)", b[:cut], len(b))
}

// Via implements Closer.
func (h *HookCloser) Via() string { return string(config.ShedViaHook) }

// Stop drops the client's idle connections once the closer is replaced.
func (h *HookCloser) Stop() { h.client.CloseIdleConnections() }
