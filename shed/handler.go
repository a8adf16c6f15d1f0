package shed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"
)

// Limits of the hook protocol (docs/SHED-HOOK.md).
const (
	// MaxCount is the largest count a shed request may ask for.
	MaxCount = 1 << 20
	// MaxBodyBytes bounds the body of a shed request.
	MaxBodyBytes = 4 << 10
	// ShedTimeout bounds how long a shed request waits for connections to be
	// told to close before it answers.
	ShedTimeout = 5 * time.Second
)

// Reasons a shed request may give.
const (
	ReasonDrain     = "drain"
	ReasonRebalance = "rebalance"
)

// ShedRequest is the body of a shed request.
type ShedRequest struct {
	Count  int    `json:"count"`
	Reason string `json:"reason"`
}

// ShedResponse answers a shed request.
type ShedResponse struct {
	Closed    int `json:"closed"`
	Remaining int `json:"remaining"`
}

// CountResponse answers a GET of the hook.
type CountResponse struct {
	Connections int `json:"connections"`
}

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	Error string `json:"error"`
}

// Handler serves hafeed's shed hook for r, as docs/SHED-HOOK.md specifies:
// POST sheds, GET and HEAD count.
func Handler(r *Registry) http.Handler {
	if r == nil {
		panic("shed: Handler of a nil Registry")
	}
	return &handler{registry: r}
}

type handler struct {
	registry *Registry
}

func (h *handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		writeJSON(w, http.StatusOK, CountResponse{Connections: h.registry.Len()})
	case http.MethodPost:
		h.shed(w, req)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed: use GET to count or POST to shed", req.Method))
	}
}

func (h *handler) shed(w http.ResponseWriter, req *http.Request) {
	if mt, _, err := mime.ParseMediaType(req.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "content type must be application/json")
		return
	}
	body := http.MaxBytesReader(w, req.Body, MaxBodyBytes)
	count, err := parseShedRequest(body)
	if err != nil {
		if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body longer than %d bytes", MaxBodyBytes))
			return
		}
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), ShedTimeout)
	defer cancel()
	closed := h.registry.Shed(ctx, count.Count)
	writeJSON(w, http.StatusOK, ShedResponse{Closed: closed, Remaining: h.registry.Len()})
}

// parseShedRequest reads and checks one shed request body.
func parseShedRequest(body io.Reader) (ShedRequest, error) {
	var raw struct {
		Count  json.RawMessage `json:"count"`
		Reason *string         `json:"reason"`
	}
	dec := json.NewDecoder(body)
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return ShedRequest{}, errors.New("empty body: send a JSON object such as {\"count\": 10, \"reason\": \"rebalance\"}")
		}
		if typeErr := (*json.UnmarshalTypeError)(nil); errors.As(err, &typeErr) {
			if typeErr.Field == "" {
				return ShedRequest{}, fmt.Errorf("body is a JSON %s, want an object", typeErr.Value)
			}
			return ShedRequest{}, fmt.Errorf("%s is a JSON %s, want a string", typeErr.Field, typeErr.Value)
		}
		return ShedRequest{}, fmt.Errorf("decoding shed request: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err == nil {
			err = errors.New("more than one JSON value")
		}
		return ShedRequest{}, fmt.Errorf("decoding shed request: trailing data after the object: %w", err)
	}
	if raw.Count == nil {
		return ShedRequest{}, errors.New("count is missing")
	}
	// ParseInt accepts exactly the JSON integers: no quotes, fraction or exponent.
	count, err := strconv.ParseInt(string(raw.Count), 10, 64)
	if err != nil || count < 0 || count > MaxCount {
		return ShedRequest{}, fmt.Errorf("count %s must be an integer from 0 to %d", raw.Count, MaxCount)
	}
	if raw.Reason == nil {
		return ShedRequest{}, fmt.Errorf("reason is missing: use %q or %q", ReasonDrain, ReasonRebalance)
	}
	switch *raw.Reason {
	case ReasonDrain, ReasonRebalance:
	default:
		return ShedRequest{}, fmt.Errorf("reason %q unknown: use %q or %q", *raw.Reason, ReasonDrain, ReasonRebalance)
	}
	return ShedRequest{Count: int(count), Reason: *raw.Reason}, nil
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, ErrorResponse{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encoding answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
