package cmd

import (
	"bytes"

	"github.com/hafeed/hafeed/agent/config"
)

// ConfigReference renders docs/CONFIG.md from the example configuration,
// so that the reference cannot drift from the code (a test compares them).
func ConfigReference() []byte {
	var b bytes.Buffer
	b.WriteString(`# Configuration reference

hafeed reads YAML from ` + "`--config`" + `, ` + "`$HAFEED_CONFIG`" + `, or ` + "`/etc/hafeed/hafeed.yaml`" + ` when it
exists. Every key is optional; below is every key with its default and what it does, exactly
as ` + "`hafeed config example`" + ` prints it. Unknown keys and values of the wrong type are errors,
every error names the file, the line and the key, and all of them are reported at once: check
a file with ` + "`hafeed config check --config FILE`" + `.
Flags of ` + "`hafeed run`" + ` override the file: ` + "`--agent-listen`" + ` (agent_check.listen),
` + "`--control-socket`" + ` (control_socket), ` + "`--state-file`" + ` (state_file), ` + "`--ports`" + `
(sources.ports), ` + "`--interval`" + ` (interval), ` + "`--log-format`" + ` and ` + "`--log-level`" + ` (log.*).
SIGHUP reloads the file and applies every key, haproxy[], shed.* and sources.ports included;
agent_check.listen, agent_check.timeout, agent_check.max_conns, control_socket, state_file,
log.format and metrics.listen change only on restart: the agent logs them and ` + "`hafeed status`" + `
lists them as "restart needed" until then.

This file is generated: ` + "`make docs`" + ` writes it from the code.

` + "```yaml\n")
	b.Write(config.Example())
	b.WriteString("```\n")
	return b.Bytes()
}
