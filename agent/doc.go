// Package agent is the hafeed daemon: it samples load, decides the weight
// and admin state this host reports, keeps that state across restarts, and
// serves the control socket the CLI talks to.
package agent
