package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseAppValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body, field string
		want              float64
		// wantErr is part of the expected error; "" means no error.
		wantErr string
	}{
		{"plain", "0.42\n", "", 0.42, ""},
		{"plain with spaces", "  1 \r\n", "", 1, ""},
		{"plain exponent", "5e-1", "", 0.5, ""},
		{"plain garbage", "<html>busy</html>", "", 0, `"<html>busy</html>" is not a number`},
		{"plain JSON object", `{"load":0.5}`, "", 0, "is not a number"},
		{"empty", "", "", 0, `"" is not a number`},
		{"top-level field", `{"utilisation": 0.3}`, "utilisation", 0.3, ""},
		{"nested field", `{"load": {"utilisation": 0.75, "other": "x"}}`, "load.utilisation", 0.75, ""},
		{"numeric string", `{"load": {"utilisation": " 0.25 "}}`, "load.utilisation", 0.25, ""},
		{"integer", `{"u": 1}`, "u", 1, ""},
		{"non-numeric string", `{"u": "high"}`, "u", 0, `JSON field "u": "high" is not a number`},
		{"missing field", `{"load": {}}`, "load.utilisation", 0, `no JSON field "load.utilisation"`},
		{"missing parent", `{}`, "load.utilisation", 0, `no JSON field "load"`},
		{"parent not an object", `{"load": 3}`, "load.utilisation", 0, `JSON field "load" is a number, want an object`},
		{"body not an object", `[0.5]`, "u", 0, `body is an array, want an object with field "u"`},
		{"boolean", `{"u": true}`, "u", 0, `JSON field "u" is a boolean, want a number`},
		{"null", `{"u": null}`, "u", 0, `JSON field "u" is null, want a number`},
		{"object", `{"u": {}}`, "u", 0, `JSON field "u" is an object, want a number`},
		{"not JSON", `u=0.5`, "u", 0, "body is not JSON"},
		{"two values", `{"u": 0.5} {"u": 0.6}`, "u", 0, "more than one JSON value"},
	}
	for _, tt := range tests {
		got, err := parseAppValue([]byte(tt.body), tt.field)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: parseAppValue error = %v, want one containing %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: parseAppValue = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}

func TestAppUtilisationHTTP(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	reply := func(path, body string) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet {
				http.Error(w, "want GET", http.StatusMethodNotAllowed)
				return
			}
			fmt.Fprint(w, body)
		})
	}
	reply("/plain", "0.6\n")
	reply("/json", `{"load": {"utilisation": 0.35}}`)
	reply("/string", `{"load": {"utilisation": "0.8"}}`)
	reply("/high", "1.7")
	reply("/negative", "-0.1")
	reply("/nan", "NaN")
	reply("/inf", `{"u": "+Inf"}`)
	reply("/max-size", strings.Repeat(" ", maxAppBody-3)+"0.5")
	reply("/too-big", strings.Repeat(" ", maxAppBody-2)+"0.5")
	mux.HandleFunc("/down", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "warming up", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/slow", func(_ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // answers only once the client gives up
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	tests := []struct {
		name    string
		app     App
		want    float64
		wantErr string
	}{
		{"plain", App{URL: srv.URL + "/plain"}, 0.6, ""},
		{"default client", App{URL: srv.URL + "/plain", Client: nil}, 0.6, ""},
		{"JSON field", App{URL: srv.URL + "/json", JSONField: "load.utilisation"}, 0.35, ""},
		{"JSON numeric string", App{URL: srv.URL + "/string", JSONField: "load.utilisation"}, 0.8, ""},
		{"64 KiB body", App{URL: srv.URL + "/max-size"}, 0.5, ""},
		{"above 1", App{URL: srv.URL + "/high"}, 0, "app utilisation 1.7 from " + srv.URL + "/high is outside 0..1"},
		{"below 0", App{URL: srv.URL + "/negative"}, 0, "app utilisation -0.1 from " + srv.URL + "/negative is outside 0..1"},
		{"NaN", App{URL: srv.URL + "/nan"}, 0, "app utilisation NaN from " + srv.URL + "/nan is not a finite number"},
		{"infinite", App{URL: srv.URL + "/inf", JSONField: "u"}, 0, "+Inf from " + srv.URL + "/inf is not a finite number"},
		{"status", App{URL: srv.URL + "/down"}, 0, "reading app utilisation from " + srv.URL + "/down: status 503 Service Unavailable"},
		{"not found", App{URL: srv.URL + "/nowhere"}, 0, "status 404 Not Found"},
		{"body too big", App{URL: srv.URL + "/too-big"}, 0, "body is larger than 64 KiB"},
		{"missing JSON field", App{URL: srv.URL + "/json", JSONField: "load.busy"}, 0, `parsing app utilisation from ` + srv.URL + `/json: no JSON field "load.busy"`},
		{"timeout", App{URL: srv.URL + "/slow", Timeout: 50 * time.Millisecond}, 0, context.DeadlineExceeded.Error()},
		{"bad URL", App{URL: "http://[::1"}, 0, "reading app utilisation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.name != "default client" {
				tt.app.Client = srv.Client()
			}
			got, err := tt.app.Utilisation(context.Background())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Utilisation error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("Utilisation = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestAppTimeoutIsDeadline(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	a := &App{URL: srv.URL, Timeout: 20 * time.Millisecond, Client: srv.Client()}
	if _, err := a.Utilisation(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Utilisation error = %v, want context.DeadlineExceeded", err)
	}
	// The caller's context bounds the reading too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a.Timeout = 0
	if _, err := a.Utilisation(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Utilisation(cancelled) error = %v, want context.Canceled", err)
	}
}

func TestAppRedactsPassword(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "2")
	}))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("hafeed", "s3cret")
	_, err = (&App{URL: u.String(), Client: srv.Client()}).Utilisation(context.Background())
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "hafeed:xxxxx@") {
		t.Errorf("Utilisation error = %v, want one naming the URL without its password", err)
	}
}

func TestAppUtilisationFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := func(name, content string) string {
		path := filepath.Join(dir, name)
		writeFile(t, path, content)
		return path
	}
	plain := file("plain", "0.9\n")
	jsonFile := file("load.json", `{"load": {"utilisation": 0.125}}`)
	high := file("high", "1.7\n")
	big := file("big", strings.Repeat("0", maxAppBody+1))
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name    string
		app     App
		want    float64
		wantErr string
	}{
		{"plain", App{File: plain}, 0.9, ""},
		{"JSON field", App{File: jsonFile, JSONField: "load.utilisation"}, 0.125, ""},
		{"outside", App{File: high}, 0, "app utilisation 1.7 from " + high + " is outside 0..1"},
		{"too big", App{File: big}, 0, "body is larger than 64 KiB"},
		{"missing", App{File: missing}, 0, "reading app utilisation from " + missing},
		{"both", App{File: plain, URL: "http://127.0.0.1:1/"}, 0, "both a URL and a file"},
		{"neither", App{}, 0, "neither a URL nor a file"},
	}
	for _, tt := range tests {
		got, err := tt.app.Utilisation(context.Background())
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: Utilisation error = %v, want one containing %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: Utilisation = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
	if _, err := (&App{File: missing}).Utilisation(context.Background()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v, want os.ErrNotExist", err)
	}
}
