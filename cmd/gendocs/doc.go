// Command gendocs writes docs/CONFIG.md from the example configuration.
package main
