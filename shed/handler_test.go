package shed_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hafeed/hafeed/shed"
)

func TestHandler(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		method      string
		contentType string
		body        string
		live        int
		wantStatus  int
		wantBody    map[string]any
		wantShed    int
		wantAllow   string
	}{
		{
			name: "count", method: http.MethodGet, live: 3,
			wantStatus: http.StatusOK, wantBody: map[string]any{"connections": 3.0},
		},
		{
			name: "count by HEAD", method: http.MethodHead, live: 2,
			wantStatus: http.StatusOK, wantBody: map[string]any{"connections": 2.0},
		},
		{
			name: "shed some", method: http.MethodPost, body: `{"count": 2, "reason": "rebalance"}`, live: 5,
			wantStatus: http.StatusOK, wantBody: map[string]any{"closed": 2.0, "remaining": 3.0}, wantShed: 2,
		},
		{
			name: "shed more than live", method: http.MethodPost, body: `{"count": 9, "reason": "drain"}`, live: 4,
			wantStatus: http.StatusOK, wantBody: map[string]any{"closed": 4.0, "remaining": 0.0}, wantShed: 4,
		},
		{
			name: "shed zero reports", method: http.MethodPost, body: `{"count": 0, "reason": "drain"}`, live: 4,
			wantStatus: http.StatusOK, wantBody: map[string]any{"closed": 0.0, "remaining": 4.0},
		},
		{
			name: "content type with charset", method: http.MethodPost, contentType: "application/json; charset=utf-8",
			body: `{"count": 1, "reason": "drain"}`, live: 1,
			wantStatus: http.StatusOK, wantBody: map[string]any{"closed": 1.0, "remaining": 0.0}, wantShed: 1,
		},
		{
			name: "unknown field ignored", method: http.MethodPost, body: `{"count": 1, "reason": "drain", "by": "agent"}`, live: 2,
			wantStatus: http.StatusOK, wantBody: map[string]any{"closed": 1.0, "remaining": 1.0}, wantShed: 1,
		},
		{
			name: "maximum count", method: http.MethodPost, body: `{"count": 1048576, "reason": "drain"}`, live: 1,
			wantStatus: http.StatusOK, wantBody: map[string]any{"closed": 1.0, "remaining": 0.0}, wantShed: 1,
		},
		{
			name: "negative count", method: http.MethodPost, body: `{"count": -1, "reason": "drain"}`, live: 2,
			wantStatus: http.StatusBadRequest, wantBody: errorBody("count -1 must be an integer from 0 to 1048576"),
		},
		{
			name: "absurd count", method: http.MethodPost, body: `{"count": 1048577, "reason": "drain"}`, live: 2,
			wantStatus: http.StatusBadRequest, wantBody: errorBody("count 1048577 must be an integer from 0 to 1048576"),
		},
		{
			name: "count beyond int64", method: http.MethodPost, body: `{"count": 99999999999999999999, "reason": "drain"}`, live: 2,
			wantStatus: http.StatusBadRequest, wantBody: errorBody("count 99999999999999999999 must be an integer from 0 to 1048576"),
		},
		{
			name: "fractional count", method: http.MethodPost, body: `{"count": 1.5, "reason": "drain"}`, live: 2,
			wantStatus: http.StatusBadRequest, wantBody: errorBody("count 1.5 must be an integer from 0 to 1048576"),
		},
		{
			name: "exponent count", method: http.MethodPost, body: `{"count": 1e2, "reason": "drain"}`, live: 2,
			wantStatus: http.StatusBadRequest, wantBody: errorBody("count 1e2 must be an integer from 0 to 1048576"),
		},
		{
			name: "quoted count", method: http.MethodPost, body: `{"count": "2", "reason": "drain"}`, live: 2,
			wantStatus: http.StatusBadRequest, wantBody: errorBody(`count "2" must be an integer from 0 to 1048576`),
		},
		{
			name: "null count", method: http.MethodPost, body: `{"count": null, "reason": "drain"}`, live: 2,
			wantStatus: http.StatusBadRequest, wantBody: errorBody(`count null must be an integer from 0 to 1048576`),
		},
		{
			name: "missing count", method: http.MethodPost, body: `{"reason": "drain"}`, live: 2,
			wantStatus: http.StatusBadRequest, wantBody: errorBody("count is missing"),
		},
		{
			name: "missing reason", method: http.MethodPost, body: `{"count": 1}`, live: 2,
			wantStatus: http.StatusBadRequest, wantBody: errorBody(`reason is missing: use "drain" or "rebalance"`),
		},
		{
			name: "unknown reason", method: http.MethodPost, body: `{"count": 1, "reason": "because"}`, live: 2,
			wantStatus: http.StatusBadRequest, wantBody: errorBody(`reason "because" unknown: use "drain" or "rebalance"`),
		},
		{
			name: "empty body", method: http.MethodPost, body: ``, live: 2,
			wantStatus: http.StatusBadRequest, wantBody: errorBody(`empty body: send a JSON object such as {"count": 10, "reason": "rebalance"}`),
		},
		{
			name: "not JSON", method: http.MethodPost, body: `count=1`, live: 2,
			wantStatus: http.StatusBadRequest, wantBody: errorBody("decoding shed request: invalid character 'c' looking for beginning of value"),
		},
		{
			name: "array", method: http.MethodPost, body: `[1]`, live: 2,
			wantStatus: http.StatusBadRequest, wantBody: errorBody("body is a JSON array, want an object"),
		},
		{
			name: "reason not a string", method: http.MethodPost, body: `{"count": 1, "reason": 7}`, live: 2,
			wantStatus: http.StatusBadRequest, wantBody: errorBody("reason is a JSON number, want a string"),
		},
		{
			name: "two objects", method: http.MethodPost, body: `{"count": 1, "reason": "drain"} {"count": 1, "reason": "drain"}`, live: 2,
			wantStatus: http.StatusBadRequest, wantBody: errorBody("decoding shed request: trailing data after the object: more than one JSON value"),
		},
		{
			name: "trailing garbage", method: http.MethodPost, body: `{"count": 1, "reason": "drain"} x`, live: 2,
			wantStatus: http.StatusBadRequest, wantBody: errorBody("decoding shed request: trailing data after the object: invalid character 'x' looking for beginning of value"),
		},
		{
			name: "body too large", method: http.MethodPost, body: `{"count": 1, "reason": "drain", "pad": "` + strings.Repeat("x", shed.MaxBodyBytes) + `"}`, live: 2,
			wantStatus: http.StatusRequestEntityTooLarge, wantBody: errorBody("body longer than 4096 bytes"),
		},
		{
			name: "form content type", method: http.MethodPost, contentType: "application/x-www-form-urlencoded",
			body: `{"count": 1, "reason": "drain"}`, live: 2,
			wantStatus: http.StatusUnsupportedMediaType, wantBody: errorBody("content type must be application/json"),
		},
		{
			name: "text content type", method: http.MethodPost, contentType: "text/plain",
			body: `{"count": 1, "reason": "drain"}`, live: 2,
			wantStatus: http.StatusUnsupportedMediaType, wantBody: errorBody("content type must be application/json"),
		},
		{
			name: "no content type", method: http.MethodPost, contentType: "-",
			body: `{"count": 1, "reason": "drain"}`, live: 2,
			wantStatus: http.StatusUnsupportedMediaType, wantBody: errorBody("content type must be application/json"),
		},
		{
			name: "bad method", method: http.MethodDelete, live: 2,
			wantStatus: http.StatusMethodNotAllowed, wantAllow: "GET, HEAD, POST",
			wantBody: errorBody("method DELETE not allowed: use GET to count or POST to shed"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var reg shed.Registry
			var rec recorder
			for i := range tt.live {
				reg.Add(rec.conn(i, nil))
			}
			req := httptest.NewRequestWithContext(t.Context(), tt.method, "/hafeed/shed", strings.NewReader(tt.body))
			switch tt.contentType {
			case "":
				req.Header.Set("Content-Type", "application/json")
			case "-":
			default:
				req.Header.Set("Content-Type", tt.contentType)
			}
			w := httptest.NewRecorder()
			shed.Handler(&reg).ServeHTTP(w, req)

			if w.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", w.Code, tt.wantStatus)
			}
			if got := w.Header().Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", got)
			}
			if got := w.Header().Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
			var got map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatalf("decoding answer %q: %v", w.Body.String(), err)
			}
			if diff := cmp.Diff(tt.wantBody, got); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
			if got := len(rec.sorted()); got != tt.wantShed {
				t.Errorf("connections shed = %d, want %d", got, tt.wantShed)
			}
		})
	}
}

func errorBody(msg string) map[string]any {
	return map[string]any{"error": msg}
}
