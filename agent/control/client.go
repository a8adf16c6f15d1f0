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

// Call sends one request to the agent on the control socket at path.
func Call(ctx context.Context, path string, req Request) (*Response, error) {
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
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return nil, fmt.Errorf("sending to control socket %s: %w", path, err)
	}
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		return nil, fmt.Errorf("reading reply from control socket %s: %w", path, err)
	}
	if !resp.OK {
		return &resp, fmt.Errorf("agent: %s", resp.Error)
	}
	return &resp, nil
}
