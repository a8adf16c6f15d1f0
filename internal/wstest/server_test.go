package wstest

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"

	"github.com/hafeed/hafeed/internal/testutil"
	"github.com/hafeed/hafeed/shed"
)

func TestServerEchoesAndServesHooks(t *testing.T) {
	t.Parallel()
	srv, _ := runServer(t, "127.0.0.1:0", ServerOptions{Work: 50})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()

	conn, _, err := websocket.Dial(ctx, wsURL(srv)+"any/path", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	for _, msg := range []string{"hello", "", "x"} {
		if err := conn.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		typ, got, err := conn.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if typ != websocket.MessageText || string(got) != msg {
			t.Errorf("echo = %v %q, want text %q", typ, got, msg)
		}
	}
	if got := srv.Conns(); got != 1 {
		t.Errorf("Conns() = %d, want 1", got)
	}

	resp, err := http.Get("http://" + srv.Addr().String() + HealthPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s = %s, want 200", HealthPath, resp.Status)
	}

	resp, err = http.Get("http://" + srv.Addr().String() + ShedPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var count shed.CountResponse
	if err := json.NewDecoder(resp.Body).Decode(&count); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(shed.CountResponse{Connections: 1}, count); diff != "" {
		t.Errorf("GET %s (-want +got):\n%s", ShedPath, diff)
	}
}

func TestServerStopClosesWithServiceRestart(t *testing.T) {
	t.Parallel()
	srv, stop := runServer(t, "127.0.0.1:0", ServerOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, wsURL(srv), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	testutil.Until(t, 5*time.Second, "server registered the connection", func() bool {
		return srv.Registry().Len() == 1
	})
	readErr := make(chan error, 1)
	go func() {
		_, _, err := conn.Read(ctx)
		readErr <- err
	}()
	stop()
	if got := websocket.CloseStatus(<-readErr); got != websocket.StatusServiceRestart {
		t.Errorf("close status = %v, want StatusServiceRestart", got)
	}
	if got := srv.Conns(); got != 0 {
		t.Errorf("Conns() after Run returned = %d, want 0", got)
	}
}

func TestServerRunsOnce(t *testing.T) {
	t.Parallel()
	srv, stop := runServer(t, "127.0.0.1:0", ServerOptions{})
	stop()
	if err := srv.Run(t.Context()); err == nil {
		t.Error("second Run returned nil, want an error")
	}
}

func TestNewServerReportsListenError(t *testing.T) {
	t.Parallel()
	if _, err := NewServer("127.0.0.1:-1", ServerOptions{}); err == nil {
		t.Error("NewServer with a bad port returned no error")
	}
}
