// Package config is hafeed's configuration: the YAML schema, its defaults,
// the commented example, and a validation that reports every problem of a
// file at once, each with its file, line and key.
package config
