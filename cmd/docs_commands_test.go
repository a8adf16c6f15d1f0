package cmd

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// docFiles returns the documents whose commands must name the real CLI and
// Makefile targets, relative to this package.
func docFiles(t *testing.T) []string {
	t.Helper()
	docs, err := filepath.Glob("../docs/*.md")
	if err != nil || len(docs) == 0 {
		t.Fatalf("no documents under ../docs (%v)", err)
	}
	return append([]string{"../README.md", "../CONTRIBUTING.md", "../examples/README.md"}, docs...)
}

// docCommand is one hafeed or make command written in a document.
type docCommand struct {
	line int
	args []string // the program's base name first: "hafeed" or "make"
	text string   // as written, for messages
}

// shellFences are the fenced blocks whose lines are commands. Untagged blocks
// count too: docs/BENCHMARKS.md's hold make commands, and the lines of a
// diagram or a table do not start with hafeed or make.
var shellFences = map[string]bool{"": true, "sh": true, "shell": true, "bash": true, "console": true}

// execLine is a systemd Exec*= line, with its prefixes (-, +, @, !, :).
var execLine = regexp.MustCompile(`^Exec\w*=[-+@!:]*(.*)$`)

// codeSpan is a one-line inline code span.
var codeSpan = regexp.MustCompile("`([^`\n]+)`")

// fencedCommands returns the hafeed and make commands in doc's shell blocks
// and in the Exec*= lines of its ini blocks.
func fencedCommands(doc string) []docCommand {
	var cmds []docCommand
	inFence, info := false, ""
	pending, pendingLine := "", 0
	for i, line := range strings.Split(doc, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "```"); ok {
			inFence, info = !inFence, ""
			if fields := strings.Fields(rest); len(fields) > 0 {
				info = strings.ToLower(fields[0])
			}
			continue
		}
		if !inFence {
			continue
		}
		if info == "ini" {
			if m := execLine.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
				cmds = append(cmds, commandsIn(m[1], i+1)...)
			}
			continue
		}
		if !shellFences[info] {
			continue
		}
		// A trailing backslash continues the command on the next line.
		if pending == "" {
			pendingLine = i + 1
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			pending += cont + " "
			continue
		}
		text := strings.TrimPrefix(strings.TrimSpace(pending+line), "$ ")
		pending = ""
		cmds = append(cmds, commandsIn(text, pendingLine)...)
	}
	return cmds
}

// inlineCommands returns the hafeed and make commands written as inline
// code outside fenced blocks, such as the README's CLI table. An argument
// with "|" in it lists alternatives ("drain|ready|maint"), brackets mark
// optional parts, and upper-case words are placeholders ("--min N").
func inlineCommands(doc string) []docCommand {
	var cmds []docCommand
	inFence := false
	for i, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
			continue
		}
		if inFence {
			continue
		}
		for _, m := range codeSpan.FindAllStringSubmatch(line, -1) {
			span := strings.NewReplacer(`\|`, "|", "[", " ", "]", " ").Replace(m[1])
			words := strings.Fields(span)
			prog, _ := program(words)
			if prog == "" {
				continue
			}
			for _, args := range alternatives(words) {
				if prog, rest := program(args); prog != "" {
					cmds = append(cmds, docCommand{line: i + 1, args: append([]string{prog}, rest...), text: m[1]})
				}
			}
		}
	}
	return cmds
}

// alternatives expands every word with "|" in it into one command per choice.
func alternatives(words []string) [][]string {
	out := [][]string{nil}
	for _, w := range words {
		var next [][]string
		for _, choice := range strings.Split(w, "|") {
			for _, prefix := range out {
				next = append(next, append(slices.Clone(prefix), choice))
			}
		}
		out = next
	}
	return out
}

// commandsIn splits one shell line into its simple commands and returns those
// that run hafeed or make.
func commandsIn(text string, line int) []docCommand {
	var cmds []docCommand
	for _, words := range simpleCommands(text) {
		if prog, args := program(words); prog != "" {
			cmds = append(cmds, docCommand{line: line, args: append([]string{prog}, args...), text: text})
		}
	}
	return cmds
}

// program skips environment assignments and sudo, and returns "hafeed" or
// "make" with its arguments when that is the program the words run.
func program(words []string) (string, []string) {
	for len(words) > 0 && (isAssignment(words[0]) || words[0] == "sudo") {
		words = words[1:]
	}
	if len(words) == 0 {
		return "", nil
	}
	switch base := path.Base(words[0]); base {
	case "hafeed", "make":
		return base, words[1:]
	}
	return "", nil
}

var (
	assignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)
	// A redirection whose target is the next word: >, >>, <, <<<, 2>.
	redirection = regexp.MustCompile(`^[0-9]*(>>?|<<?<?)$`)
	// A redirection with its target attached: >/dev/null, 2>&1.
	attachedRedirection = regexp.MustCompile(`^[0-9]*(>|<)`)
)

func isAssignment(word string) bool { return assignment.MatchString(word) }

// simpleCommands splits a shell line at ;, &, && , || and |, drops
// redirections and comments, and removes quotes: enough for the commands the
// documents show, not a shell.
func simpleCommands(text string) [][]string {
	var (
		cmds     [][]string
		words    []string
		word     strings.Builder
		inWord   bool
		skipNext bool // the next word is a redirection's target
	)
	endWord := func() {
		if !inWord {
			return
		}
		w := word.String()
		word.Reset()
		inWord = false
		switch {
		case skipNext:
			skipNext = false
		case redirection.MatchString(w):
			skipNext = true
		case attachedRedirection.MatchString(w):
		default:
			words = append(words, w)
		}
	}
	endCommand := func() {
		endWord()
		if len(words) > 0 {
			cmds = append(cmds, words)
		}
		words = nil
	}
	for i := 0; i < len(text); i++ {
		ch := text[i]
		switch {
		case ch == '\'' || ch == '"':
			end := strings.IndexByte(text[i+1:], ch)
			if end < 0 {
				end = len(text) - i - 1
			}
			word.WriteString(text[i+1 : i+1+end])
			inWord = true
			i += end + 1
		case ch == '\\' && i+1 < len(text):
			word.WriteByte(text[i+1])
			inWord = true
			i++
		case ch == '#' && !inWord:
			endCommand()
			return cmds
		case ch == ';' || ch == '&' || ch == '|':
			if ch == '&' && inWord && strings.HasSuffix(word.String(), ">") {
				word.WriteByte(ch) // 2>&1
				continue
			}
			endCommand()
		case ch == ' ' || ch == '\t':
			endWord()
		default:
			word.WriteByte(ch)
			inWord = true
		}
	}
	endCommand()
	return cmds
}

// placeholder is an upper-case word that stands for a value: FILE, N, R.
var placeholder = regexp.MustCompile(`^[A-Z][A-Z_]*$`)

// checkHafeed reports whether args (without "hafeed") name an existing command
// path, existing flags with values of their type, and arguments the command
// accepts. Nothing runs: the tree is built as Main builds it, then resolved
// and parsed as cobra would before calling the command.
func checkHafeed(args []string) error {
	root := newRootCmd(io.Discard, io.Discard)
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	c, rest, err := root.Find(args)
	if err != nil {
		return err
	}
	c.InitDefaultHelpFlag()
	c.InitDefaultVersionFlag() // on the root only: the one with a Version
	rest = slices.Clone(rest)
	for i, a := range rest {
		if i == 0 || !placeholder.MatchString(a) {
			continue
		}
		name, isFlag := strings.CutPrefix(rest[i-1], "--")
		if !isFlag {
			continue
		}
		if f := c.Flags().Lookup(name); f != nil && f.NoOptDefVal == "" {
			rest[i] = f.DefValue
		}
	}
	if err := c.ParseFlags(rest); err != nil {
		return fmt.Errorf("%s: %w", c.CommandPath(), err)
	}
	positional := c.Flags().Args()
	if c.Name() == "help" && c.Parent() == root {
		topic := slices.DeleteFunc(slices.Clone(positional), placeholder.MatchString)
		if len(topic) > 0 {
			if _, _, err := root.Find(topic); err != nil {
				return fmt.Errorf("%s: %w", c.CommandPath(), err)
			}
		}
		return nil
	}
	if err := c.ValidateArgs(positional); err != nil {
		return fmt.Errorf("%s: %w", c.CommandPath(), err)
	}
	return nil
}

// makeTarget is a rule's line in a Makefile: the targets before one colon
// (not an assignment's ":=").
var makeTarget = regexp.MustCompile(`^([A-Za-z0-9_./ -]+?)\s*::?(?:[^=]|$)`)

// makeTargets returns the targets the Makefile defines rules for.
func makeTargets(makefile string) map[string]bool {
	targets := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(makefile))
	for sc.Scan() {
		m := makeTarget.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		for _, name := range strings.Fields(m[1]) {
			if !strings.HasPrefix(name, ".") {
				targets[name] = true
			}
		}
	}
	return targets
}

// checkMake reports whether every target args (without "make") names exists;
// variable assignments (QUICK=1) and options are not targets.
func checkMake(targets map[string]bool, args []string) error {
	for _, a := range args {
		if isAssignment(a) || strings.HasPrefix(a, "-") {
			continue
		}
		if !targets[a] {
			return fmt.Errorf("the Makefile has no target %q", a)
		}
	}
	return nil
}

// checkDoc returns one message for each command in doc that names something
// the CLI or the Makefile does not have.
func checkDoc(doc string, targets map[string]bool) (problems []string, checked int) {
	for _, c := range append(fencedCommands(doc), inlineCommands(doc)...) {
		var err error
		switch c.args[0] {
		case "hafeed":
			err = checkHafeed(c.args[1:])
		case "make":
			err = checkMake(targets, c.args[1:])
		}
		checked++
		if err != nil {
			problems = append(problems, fmt.Sprintf("line %d: %s: %v", c.line, c.text, err))
		}
	}
	return problems, checked
}

func readMakeTargets(t *testing.T) map[string]bool {
	t.Helper()
	makefile, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	targets := makeTargets(string(makefile))
	for _, want := range []string{"test", "run", "demo", "docs"} {
		if !targets[want] {
			t.Fatalf("the Makefile parser finds no target %q in ../Makefile; found %v", want, targets)
		}
	}
	return targets
}

// TestDocsNameRealCommands fails when a document shows a hafeed command, flag
// or argument the CLI does not have, or a make target the Makefile lacks.
func TestDocsNameRealCommands(t *testing.T) {
	targets := readMakeTargets(t)
	total := 0
	for _, file := range docFiles(t) {
		doc, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		problems, checked := checkDoc(string(doc), targets)
		total += checked
		for _, p := range problems {
			t.Errorf("%s %s", strings.TrimPrefix(file, "../"), p)
		}
	}
	// The README alone shows more than this; fewer means the parser lost them.
	if total < 40 {
		t.Errorf("found %d commands in the documents, want at least 40: the extraction is broken", total)
	}
}

func TestCheckDoc(t *testing.T) {
	targets := makeTargets("build: ## b\n\tgo build\ntest: deps vet\nNFPM := x\n$(NFPM):\n.PHONY: build test\n")
	tests := []struct {
		name string
		doc  string
		want []string // substrings of the one problem; nil when the doc is valid
	}{
		{"valid commands", "```sh\nhafeed drain --wait --shed-rate 50 --timeout 5m || true   # a comment\n" +
			"sudo hafeed status --json\nHAFEED_CONTROL_SOCKET=.dev/c.sock ./bin/hafeed ready\n" +
			"hafeed config example > hafeed.yaml && hafeed config check -c hafeed.yaml\n" +
			"hafeed completion bash\nhafeed help drain\nhafeed --help\n$ make build QUICK=1\nDEB_ARCH=arm64 make test\n```\n", nil},
		{"a continued line", "```sh\nhafeed drain --wait \\\n    --timeout 5m\n```\n", nil},
		{"unknown flag", "```sh\nhafeed drain --wiat\n```\n", []string{"line 2: hafeed drain --wiat: hafeed drain: unknown flag: --wiat"}},
		{"flag of another command", "```\nhafeed ready --wait\n```\n", []string{"unknown flag: --wait"}},
		{"unknown command", "```sh\nhafeed stauts\n```\n", []string{`unknown command "stauts"`}},
		{"unknown subcommand", "```sh\nhafeed config chek\n```\n", []string{`unknown command "chek"`}},
		{"unknown help topic", "```sh\nhafeed help drian\n```\n", []string{`unknown command "drian"`}},
		{"argument not taken", "```sh\nhafeed status ws1\n```\n", []string{"takes no arguments"}},
		{"value of the wrong type", "```sh\nhafeed drain --wait --timeout five\n```\n", []string{`invalid argument "five"`}},
		{"after an operator", "```sh\nsystemctl stop ws && hafeed drian\n```\n", []string{`unknown command "drian"`}},
		{"systemd Exec line", "```ini\n[Service]\nExecStop=-+/usr/bin/hafeed drain --shed 50\n```\n", []string{"line 3:", "unknown flag: --shed"}},
		{"unknown make target", "```sh\nmake tset\n```\n", []string{`no target "tset"`}},
		{"inline command", "Run `hafeed drain --wait --min N` or `hafeed drain --nowait`.\n", []string{"unknown flag: --nowait"}},
		{"inline alternatives", "`hafeed drain|ready|mant` and `hafeed run --log-format auto\\|json`\n", []string{`unknown command "mant"`}},
		{"inline make target", "`make bench QUICK=1`\n", []string{`no target "bench"`}},
		{"an assignment is not a target", "```sh\nmake NFPM\n```\n", []string{`no target "NFPM"`}},
		{"not a shell block", "```yaml\nhafeed drain --nope\n```\n", nil},
		{"not a command", "the user `hafeed` and `hafeed_weight_percent`; `go test ./e2e`\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems, _ := checkDoc(tt.doc, targets)
			if len(tt.want) == 0 {
				if len(problems) > 0 {
					t.Errorf("problems = %q, want none", problems)
				}
				return
			}
			if len(problems) != 1 {
				t.Fatalf("problems = %q, want one matching %q", problems, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(problems[0], w) {
					t.Errorf("problem %q does not contain %q", problems[0], w)
				}
			}
		})
	}
}

// TestREADMEListsEveryCommand keeps the README's CLI table complete: every
// command a user can run has a row, and the flags a row names exist.
func TestREADMEListsEveryCommand(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	root := newRootCmd(io.Discard, io.Discard)
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	listed := map[string]bool{}
	for _, row := range strings.Split(string(readme), "\n") {
		if !strings.HasPrefix(row, "| `hafeed ") {
			continue
		}
		spans := codeSpan.FindAllStringSubmatch(row, -1)
		cmds := inlineCommands(spans[0][0])
		for _, c := range cmds {
			found, _, err := root.Find(c.args[1:])
			if err != nil {
				t.Errorf("README row %q: %v", spans[0][1], err)
				continue
			}
			listed[found.CommandPath()] = true
			// The row's other flags belong to its command: `--ports 8080,8443`.
			for _, s := range spans[1:] {
				if !strings.HasPrefix(s[1], "-") {
					continue
				}
				if name, ok := strings.CutPrefix(s[1], "--"); ok && !strings.ContainsAny(name, " =") {
					// A flag named without its value: `--shed-rate`.
					found.InitDefaultHelpFlag()
					if found.Flags().Lookup(name) == nil {
						t.Errorf("README row %q names %s, which %s does not have", spans[0][1], s[0], found.CommandPath())
					}
					continue
				}
				for _, f := range inlineCommands("`" + found.CommandPath() + " " + s[1] + "`") {
					if err := checkHafeed(f.args[1:]); err != nil {
						t.Errorf("README row %q names %s: %v", spans[0][1], s[0], err)
					}
				}
			}
		}
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if !sub.IsAvailableCommand() {
				continue
			}
			if sub.HasAvailableSubCommands() {
				walk(sub)
			} else if !listed[sub.CommandPath()] {
				t.Errorf("README's CLI table has no row for %q", sub.CommandPath())
			}
		}
	}
	walk(root)
	if len(listed) < 10 {
		t.Errorf("README's CLI table lists %d commands, want at least 10: %v", len(listed), listed)
	}
}

// TestREADMEHAProxyLinesAreInTheExample keeps the README's haproxy.cfg lines
// those of haproxy.cfg.example, which the tests check with `haproxy -c`.
func TestREADMEHAProxyLinesAreInTheExample(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../haproxy.cfg.example")
	if err != nil {
		t.Fatal(err)
	}
	config := func(line string) string {
		line, _, _ = strings.Cut(line, "#")
		return strings.Join(strings.Fields(line), " ")
	}
	inExample := map[string]bool{}
	for _, line := range strings.Split(string(example), "\n") {
		inExample[config(line)] = true
	}
	block, ok := fencedBlock(string(readme), "haproxy")
	if !ok {
		t.Fatal("README.md has no ```haproxy block")
	}
	for _, line := range strings.Split(block, "\n") {
		if c := config(line); c != "" && !inExample[c] {
			t.Errorf("README's haproxy.cfg line %q is not in haproxy.cfg.example", c)
		}
	}
}

// fencedBlock returns the body of doc's first fenced block tagged info.
func fencedBlock(doc, info string) (string, bool) {
	_, after, ok := strings.Cut(doc, "```"+info+"\n")
	if !ok {
		return "", false
	}
	body, _, ok := strings.Cut(after, "```")
	return body, ok
}

// TestDocCommandsRun runs the documented commands that only print (version,
// config example, completion, help) and expects them to succeed.
func TestDocCommandsRun(t *testing.T) {
	printsOnly := func(args []string) bool {
		if slices.Contains(args, "--help") || slices.Contains(args, "-h") {
			return true
		}
		path := strings.Join(slices.DeleteFunc(slices.Clone(args), func(a string) bool { return strings.HasPrefix(a, "-") }), " ")
		return path == "version" || path == "config example" || strings.HasPrefix(path, "completion ") || strings.HasPrefix(path, "help")
	}
	ran := 0
	for _, file := range docFiles(t) {
		doc, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range fencedCommands(string(doc)) {
			if c.args[0] != "hafeed" || !printsOnly(c.args[1:]) {
				continue
			}
			var out, errOut bytes.Buffer
			if code := Main(c.args[1:], &out, &errOut); code != ExitOK || out.Len() == 0 {
				t.Errorf("%s line %d: hafeed %s exited %d with %d bytes out: %s", file, c.line, strings.Join(c.args[1:], " "), code, out.Len(), errOut.String())
			}
			ran++
		}
	}
	if ran == 0 {
		t.Error("no document shows a command that only prints (hafeed config example is in the README)")
	}
}

// TestDocsLinksResolve fails when a relative link in a document points at a
// file or a heading that does not exist, as moving text between them can do.
func TestDocsLinksResolve(t *testing.T) {
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, file := range docFiles(t) {
		doc, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(withoutFences(string(doc)), "\n") {
			for _, m := range link.FindAllStringSubmatch(codeSpan.ReplaceAllString(line, ""), -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				rel, anchor, _ := strings.Cut(target, "#")
				dest := file
				if rel != "" {
					dest = filepath.Join(filepath.Dir(file), rel)
				}
				if _, err := os.Stat(dest); err != nil {
					t.Errorf("%s line %d: link %s: %v", strings.TrimPrefix(file, "../"), i+1, target, err)
					continue
				}
				if anchor == "" {
					continue
				}
				body, err := os.ReadFile(dest)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Contains(headingAnchors(string(body)), anchor) {
					t.Errorf("%s line %d: link %s: %s has no heading with that anchor", strings.TrimPrefix(file, "../"), i+1, target, strings.TrimPrefix(dest, "../"))
				}
			}
		}
	}
}

// withoutFences blanks the lines of fenced blocks, keeping line numbers.
func withoutFences(doc string) string {
	lines := strings.Split(doc, "\n")
	inFence := false
	for i, line := range lines {
		fence := strings.HasPrefix(strings.TrimSpace(line), "```")
		if fence {
			inFence = !inFence
		}
		if fence || inFence {
			lines[i] = ""
		}
	}
	return strings.Join(lines, "\n")
}

// headingAnchors returns the anchors GitHub gives doc's headings: lower
// case, punctuation dropped, spaces as hyphens.
func headingAnchors(doc string) []string {
	var anchors []string
	drop := regexp.MustCompile(`[^\p{L}\p{N} _-]`)
	for _, line := range strings.Split(withoutFences(doc), "\n") {
		text, ok := strings.CutPrefix(line, "#")
		if !ok {
			continue
		}
		text = strings.TrimSpace(strings.TrimLeft(text, "#"))
		anchors = append(anchors, strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(text), ""), " ", "-"))
	}
	return anchors
}
