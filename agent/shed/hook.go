package shed

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

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
	// as one the drain waits for.
	return &HookCloser{url: url, client: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	}}
}

// Close implements Closer.
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
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("shed hook %s: %s: %s", h.url, resp.Status, bytes.TrimSpace(data))
	}
	var out hook.ShedResponse
	if err := json.Unmarshal(data, &out); err != nil {
		return 0, fmt.Errorf("shed hook %s: malformed reply %q: %v", h.url, data, err)
	}
	return out.Closed, nil
}

// Via implements Closer.
func (h *HookCloser) Via() string { return string(config.ShedViaHook) }

// Stop drops the client's idle connections once the closer is replaced.
func (h *HookCloser) Stop() { h.client.CloseIdleConnections() }
