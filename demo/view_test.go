package main

import (
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{0, "0:00"},
		{1499 * time.Millisecond, "0:01"},
		{90 * time.Second, "1:30"},
		{10*time.Minute + 5*time.Second, "10:05"},
	} {
		if got := clock(tc.in); got != tc.want {
			t.Errorf("clock(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestBar(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{0, "····"},
		{0.25, "██··"},
		{0.5, "████"},
		{2, "████"},
		{-1, "····"},
	} {
		if got := bar(tc.v, 0.5, 4); got != tc.want {
			t.Errorf("bar(%v, 0.5, 4) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestTruncateText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"up 70%", "up 70%"},
		{"drain up 101%", "drain…"},
		{"ééééééé", "ééééé…"}, // runes, not bytes
	} {
		if got := truncateText(tc.in, 6); got != tc.want {
			t.Errorf("truncateText(%q, 6) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
