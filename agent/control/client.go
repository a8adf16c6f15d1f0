package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
)

// Call sends one request to the agent on the control socket at path. The
// request carries the time left until ctx's deadline (DefaultDeadline
// without one), less the time kept for the reply: the agent starts nothing
// past it, so when Call fails for lack of time the request was not
// applied. A busy agent is asked again until the deadline.
func Call(ctx context.Context, path string, req Request) (*Response, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultDeadline)
		defer cancel()
	}
	dl, _ := ctx.Deadline()
	req.Deadline = dl.Add(-min(time.Duration(replyAllowance*float64(time.Until(dl))), maxReplyAllowance))
	for pause := 20 * time.Millisecond; ; pause = min(2*pause, 500*time.Millisecond) {
		resp, err := call(ctx, path, req)
		if err != nil || !resp.Busy {
			return resp, err
		}
		if time.Now().Add(pause).After(req.Deadline) {
			return resp, fmt.Errorf("%w on control socket %s: %s", ErrBusy, path, resp.Error)
		}
		select {
		case <-ctx.Done():
			return resp, fmt.Errorf("%w on control socket %s: %s", ErrBusy, path, resp.Error)
		case <-time.After(pause):
		}
	}
}

func call(ctx context.Context, path string, req Request) (*Response, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w on control socket %s: start it with `hafeed run` (or `systemctl start hafeed`), or point --control-socket / HAFEED_CONTROL_SOCKET at the socket it uses", ErrAgentUnreachable, path)
		}
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("control socket %s: permission denied: run as root or as a member of the socket's group", path)
		}
		return nil, fmt.Errorf("connecting to control socket %s: %w", path, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	// Counted on the monotonic clock, up to the moment it is sent.
	req.Within = time.Until(req.Deadline)
	// A busy agent answers without reading: its reply may be waiting
	// although sending failed.
	sendErr := json.NewEncoder(conn).Encode(req)
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); sendErr != nil && (err != nil || !resp.Busy) {
		return nil, fmt.Errorf("sending to control socket %s: %w", path, sendErr)
	} else if err != nil {
		return nil, fmt.Errorf("reading reply from control socket %s: %w (the request may or may not have been applied: check `hafeed status`)", path, err)
	}
	if !resp.OK && !resp.Busy {
		return &resp, &agentError{msg: resp.Error, config: resp.Config}
	}
	return &resp, nil
}

// agentError is a request the agent refused; one its configuration caused
// is ErrAgentConfig.
type agentError struct {
	msg    string
	config bool
}

func (e *agentError) Error() string { return "agent: " + e.msg }

func (e *agentError) Is(target error) bool { return e.config && target == ErrAgentConfig }
