package shed_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/coder/websocket"

	"github.com/hafeed/hafeed/shed"
	"github.com/hafeed/hafeed/shed/shedws"
)

// A coder/websocket echo server that lets hafeed shed its connections. The
// hook is served on its own listener, bound to loopback in production, so it
// is not reachable through HAProxy like the WebSocket endpoint.
func Example() {
	var live shed.Registry

	public := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		remove := live.Add(shedws.Conn(c))
		defer remove()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, msg); err != nil {
				return
			}
		}
	}))
	defer public.Close()

	hook := http.NewServeMux()
	hook.Handle("/hafeed/shed", shed.Handler(&live))
	admin := httptest.NewServer(hook)
	defer admin.Close()

	// A client connects and exchanges a message, then keeps reading.
	ctx := context.Background()
	client, _, err := websocket.Dial(ctx, public.URL, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer client.CloseNow()
	if err := client.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
		log.Fatal(err)
	}
	_, msg, err := client.Read(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("echo: %s\n", msg)
	readErr := make(chan error, 1)
	go func() {
		_, _, err := client.Read(ctx)
		readErr <- err
	}()

	// hafeed's agent asks the server to shed one connection.
	resp, err := http.Post(admin.URL+"/hafeed/shed", "application/json",
		strings.NewReader(`{"count": 1, "reason": "rebalance"}`))
	if err != nil {
		log.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("hook answered %d: %s", resp.StatusCode, answer)

	// The client sees Service Restart and would reconnect through HAProxy.
	fmt.Println("client saw:", websocket.CloseStatus(<-readErr))
	// Output:
	// echo: hello
	// hook answered 200: {"closed":1,"remaining":0}
	// client saw: StatusServiceRestart
}
