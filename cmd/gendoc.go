package cmd

import (
	"bytes"
	"strings"

	"github.com/hafeed/hafeed/agent/config"
)

// ConfigReference renders docs/CONFIG.md from the example configuration,
// so that the reference cannot drift from the code (a test compares them).
func ConfigReference() []byte {
	var b bytes.Buffer
	b.WriteString(`# Configuration reference

hafeed reads YAML from ` + "`--config`" + `, ` + "`$HAFEED_CONFIG`" + `, or ` + "`/etc/hafeed/hafeed.yaml`" + ` when it
exists. Every key is optional; below is every key with its default and what it does, exactly
as ` + "`hafeed config example`" + ` prints it. Unknown keys, keys given twice, tabs in the
indentation and values of the wrong type are errors, every error names the file, the line and
the key, and all of them are reported at once, in line order: check a file with
` + "`hafeed config check FILE`" + `.
Flags of ` + "`hafeed run`" + ` override the file: ` + "`--agent-listen`" + ` (agent_check.listen),
` + "`--control-socket`" + ` (control_socket), ` + "`--state-file`" + ` (state_file), ` + "`--ports`" + `
(sources.ports), ` + "`--interval`" + ` (interval), ` + "`--log-format`" + ` and ` + "`--log-level`" + ` (log.*).
SIGHUP reloads the file and applies every key, haproxy[], shed.* and sources.ports included;
` + wrap(englishList(config.RestartOnlyKeys())+" change only on restart: the agent logs them and `hafeed status` lists them as \"restart needed\" until then.", referenceWidth) + `

This file is generated: ` + "`make docs`" + ` writes it from the code.

` + "```yaml\n")
	b.Write(config.Example())
	b.WriteString("```\n")
	return b.Bytes()
}

// referenceWidth is the width the reference's generated prose wraps at.
const referenceWidth = 96

// englishList joins items as "a, b and c".
func englishList(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

// wrap breaks text into lines of at most width bytes, between words.
func wrap(text string, width int) string {
	var b strings.Builder
	line := 0
	for i, word := range strings.Fields(text) {
		switch {
		case i == 0:
		case line+1+len(word) > width:
			b.WriteByte('\n')
			line = 0
		default:
			b.WriteByte(' ')
			line++
		}
		b.WriteString(word)
		line += len(word)
	}
	return b.String()
}
