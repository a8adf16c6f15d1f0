// Package e2e tests hafeed end to end: real hafeed processes built from the
// tree, a real haproxy polling them, and assertions made through HAProxy's
// own runtime API.
package e2e
