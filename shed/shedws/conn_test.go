package shedws_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"

	"github.com/hafeed/hafeed/internal/testutil"
	"github.com/hafeed/hafeed/shed"
	"github.com/hafeed/hafeed/shed/shedws"
)

// echoServer serves a WebSocket echo at / and the shed hook at /hafeed/shed;
// it stops when the test ends, after every connection handler has returned.
func echoServer(t *testing.T, live *shed.Registry) *httptest.Server {
	t.Helper()
	var handlers sync.WaitGroup
	mux := http.NewServeMux()
	mux.Handle("/hafeed/shed", shed.Handler(live))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		handlers.Add(1)
		defer handlers.Done()
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		remove := live.Add(shedws.Conn(c))
		defer remove()
		for {
			typ, msg, err := c.Read(context.Background())
			if err != nil {
				return
			}
			if err := c.Write(context.Background(), typ, msg); err != nil {
				return
			}
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		handlers.Wait()
	})
	return srv
}

// client is a test WebSocket client whose reads run in the background.
type client struct {
	conn     *websocket.Conn
	messages chan string
	closed   chan error
}

// dial connects a client and waits for one echo, so the server has it live.
func dial(t *testing.T, url string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dialing %s: %v", url, err)
	}
	c := &client{conn: conn, messages: make(chan string, 16), closed: make(chan error, 1)}
	go func() {
		for {
			_, msg, err := conn.Read(context.Background())
			if err != nil {
				c.closed <- err
				return
			}
			c.messages <- string(msg)
		}
	}()
	t.Cleanup(func() {
		conn.CloseNow()
		<-c.closed
	})
	c.echo(t, "hello")
	return c
}

// echo sends msg and waits for it to come back.
func (c *client) echo(t *testing.T, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("writing %q: %v", msg, err)
	}
	select {
	case got := <-c.messages:
		if got != msg {
			t.Fatalf("echo = %q, want %q", got, msg)
		}
	case err := <-c.closed:
		t.Fatalf("connection closed before the echo of %q: %v", msg, err)
	case <-ctx.Done():
		t.Fatalf("no echo of %q: %v", msg, ctx.Err())
	}
}

// waitClosed returns the error that ended the client's connection.
func (c *client) waitClosed(t *testing.T) error {
	t.Helper()
	select {
	case err := <-c.closed:
		c.closed <- err
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("connection still open 5s after shedding")
		return nil
	}
}

func postShed(t *testing.T, url string, count int) shed.ShedResponse {
	t.Helper()
	body := fmt.Sprintf(`{"count": %d, "reason": "drain"}`, count)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/hafeed/shed", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("posting to the shed hook: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("shed hook answered %s", resp.Status)
	}
	var answer shed.ShedResponse
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		t.Fatalf("decoding the shed hook's answer: %v", err)
	}
	return answer
}

func TestHookClosesOldestWithServiceRestart(t *testing.T) {
	t.Parallel()
	var live shed.Registry
	srv := echoServer(t, &live)
	clients := make([]*client, 4)
	for i := range clients {
		clients[i] = dial(t, srv.URL)
	}

	start := time.Now()
	got := postShed(t, srv.URL, 2)
	if diff := cmp.Diff(shed.ShedResponse{Closed: 2, Remaining: 2}, got); diff != "" {
		t.Errorf("hook answer (-want +got):\n%s", diff)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("hook took %v to answer; the close handshakes should take a round trip", elapsed)
	}

	for i, c := range clients[:2] {
		err := c.waitClosed(t)
		var closeErr websocket.CloseError
		if !errors.As(err, &closeErr) {
			t.Fatalf("client %d: connection ended with %v, want a close frame", i, err)
		}
		want := websocket.CloseError{Code: websocket.StatusServiceRestart, Reason: shed.CloseReason}
		if diff := cmp.Diff(want, closeErr); diff != "" {
			t.Errorf("client %d close (-want +got):\n%s", i, diff)
		}
	}
	for _, c := range clients[2:] {
		c.echo(t, "still here")
	}
	if got := live.Len(); got != 2 {
		t.Errorf("Len() = %d, want 2", got)
	}
}

func TestShedReturnsWhenContextEnds(t *testing.T) {
	t.Parallel()
	var live shed.Registry
	srv := echoServer(t, &live)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	// A client that never reads cannot answer the close handshake.
	conn, _, err := websocket.Dial(ctx, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	testutil.Until(t, 5*time.Second, "the server registering the connection", func() bool { return live.Len() > 0 })

	shedCtx, shedCancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer shedCancel()
	start := time.Now()
	if closed := live.Shed(shedCtx, 1); closed != 1 {
		t.Errorf("Shed(1) = %d, want 1: the close frame is on its way", closed)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("Shed took %v with a 100ms context", elapsed)
	}
}
