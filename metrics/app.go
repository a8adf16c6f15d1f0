package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// maxAppBody is the most hafeed reads of an application's report.
const maxAppBody = 64 << 10

// App reads the utilisation an application reports about itself, from an
// HTTP endpoint or a file, as a plain number or a field of a JSON object.
type App struct {
	// URL is fetched with GET; set it or File.
	URL string
	// File is read instead of fetching a URL.
	File string
	// JSONField is the dotted path of the value in a JSON body, e.g.
	// "load.utilisation"; "" means the body is a plain number.
	JSONField string
	// Timeout bounds one reading; 0 is 1s.
	Timeout time.Duration
	// Client fetches URL; nil is http.DefaultClient.
	Client *http.Client
}

// Utilisation returns the application's utilisation, which must be a finite
// number within 0..1. The value may be a JSON number or a numeric string.
func (a *App) Utilisation(ctx context.Context) (float64, error) {
	timeout := a.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var (
		body   []byte
		source string
		err    error
	)
	switch {
	case a.URL != "" && a.File != "":
		return 0, errors.New("app utilisation: both a URL and a file are set; set one")
	case a.URL != "":
		source = redactURL(a.URL)
		body, err = a.fetch(ctx)
	case a.File != "":
		source = a.File
		body, err = readApp(ctx, a.File)
	default:
		return 0, errors.New("app utilisation: neither a URL nor a file is set")
	}
	if err != nil {
		return 0, fmt.Errorf("reading app utilisation from %s: %w", source, err)
	}
	v, err := parseAppValue(body, a.JSONField)
	if err != nil {
		return 0, fmt.Errorf("parsing app utilisation from %s: %w", source, err)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("app utilisation %v from %s is not a finite number", v, source)
	}
	if v < 0 || v > 1 {
		return 0, fmt.Errorf("app utilisation %v from %s is outside 0..1", v, source)
	}
	return v, nil
}

// fetch GETs the URL and returns its body.
func (a *App) fetch(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL, nil)
	if err != nil {
		return nil, err
	}
	client := a.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if uerr := (*url.Error)(nil); errors.As(err, &uerr) {
		return nil, uerr.Err // the URL is already in the caller's context
	}
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s, want 200 OK", resp.Status)
	}
	return readLimited(resp.Body)
}

// readApp reads the file an application writes its utilisation to.
func readApp(ctx context.Context, path string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLimited(f)
}

// readLimited reads r to the end, failing if it holds more than maxAppBody.
func readLimited(r io.Reader) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, maxAppBody+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxAppBody {
		return nil, fmt.Errorf("body is larger than %d KiB", maxAppBody>>10)
	}
	return body, nil
}

// parseAppValue returns the number in body: the whole body when field is
// "", otherwise the JSON value at the dotted path field, which may be a
// number or a string holding one.
func parseAppValue(body []byte, field string) (float64, error) {
	if field == "" {
		return parseAppNumber(string(body))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return 0, fmt.Errorf("body is not JSON: %w", err)
	}
	if dec.More() {
		return 0, errors.New("body holds more than one JSON value")
	}
	var path []string
	for name := range strings.SplitSeq(field, ".") {
		path = append(path, name)
		obj, ok := v.(map[string]any)
		if !ok && len(path) == 1 {
			return 0, fmt.Errorf("body is %s, want an object with field %q", jsonKind(v), field)
		}
		if !ok {
			return 0, fmt.Errorf("JSON field %q is %s, want an object", strings.Join(path[:len(path)-1], "."), jsonKind(v))
		}
		if v, ok = obj[name]; !ok {
			return 0, fmt.Errorf("no JSON field %q", strings.Join(path, "."))
		}
	}
	switch v := v.(type) {
	case json.Number:
		return parseAppNumber(v.String())
	case string:
		n, err := parseAppNumber(v)
		if err != nil {
			return 0, fmt.Errorf("JSON field %q: %w", field, err)
		}
		return n, nil
	default:
		return 0, fmt.Errorf("JSON field %q is %s, want a number", field, jsonKind(v))
	}
}

// parseAppNumber parses a decimal number, ignoring surrounding space.
func parseAppNumber(s string) (float64, error) {
	s = strings.TrimSpace(s)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		if len(s) > 40 {
			s = s[:40] + "…"
		}
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return v, nil
}

// jsonKind names the JSON type of a decoded value.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// redactURL hides any password in rawURL, for errors.
func redactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	return u.Redacted()
}
