// Command hafeed is the load-feedback agent for HAProxy: see `hafeed --help`.
package main
