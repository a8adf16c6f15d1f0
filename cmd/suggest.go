package cmd

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// agentClientNote is the annotation of the commands that act on the
// running agent: it says why they take none of run's other flags.
const agentClientNote = "hafeed.client"

// flagError is the root's flag error handler: a usage error that, for an
// unknown flag, names the nearest flag of the command ("did you mean
// --ports?"), or the commands that do take it.
func flagError(c *cobra.Command, err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "unknown flag: --"); ok {
		msg += unknownFlagHint(c, name)
	}
	return usageErr(fmt.Errorf("%s (see `%s --help`)", msg, c.CommandPath()))
}

// unknownFlagHint says what the operator may have meant by --name on c.
func unknownFlagHint(c *cobra.Command, name string) string {
	if near := nearestFlag(c, name); near != "" {
		return "; did you mean --" + near + "?"
	}
	// A flag of another command, or one near it.
	takers := commandsWithFlag(c.Root(), name)
	flag := name
	if len(takers) == 0 {
		bestDist := 3
		for _, other := range allFlagNames(c.Root()) {
			if d := distance(name, other); isNear(name, other) && (len(takers) == 0 || d < bestDist) {
				flag, takers, bestDist = other, commandsWithFlag(c.Root(), other), d
			}
		}
	}
	if len(takers) == 0 {
		return ""
	}
	hint := ": `" + c.CommandPath() + "` does not take it"
	if flag != name {
		hint = "; did you mean --" + flag + "? `" + c.CommandPath() + "` does not take it either"
	}
	if note := c.Annotations[agentClientNote]; note != "" {
		hint += ": " + note
	}
	return hint + fmt.Sprintf("; --%s is a flag of %s", flag, englishList(takers))
}

// nearestFlag is the flag of c closest to name, "" when none is close.
func nearestFlag(c *cobra.Command, name string) string {
	best, bestDist := "", 3
	visit := func(f *pflag.Flag) {
		if d := distance(name, f.Name); (d < bestDist || d == bestDist && best == "") && isNear(name, f.Name) {
			best, bestDist = f.Name, d
		}
	}
	c.Flags().VisitAll(visit)
	c.InheritedFlags().VisitAll(visit)
	return best
}

// isNear says whether a mistyped flag name may have meant flag: one edit
// apart (two for names of five letters or more), or a prefix of it of at
// least three letters.
func isNear(typed, flag string) bool {
	if typed == flag {
		return false
	}
	if len(typed) >= 3 && strings.HasPrefix(flag, typed) {
		return true
	}
	allowed := 1
	if len(flag) >= 5 {
		allowed = 2
	}
	return distance(typed, flag) <= allowed
}

// commandsWithFlag lists, as "hafeed run", the commands under root that
// take --name (help aside).
func commandsWithFlag(root *cobra.Command, name string) []string {
	if name == "help" {
		return nil
	}
	var out []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Flags().Lookup(name) != nil {
			out = append(out, "`"+c.CommandPath()+"`")
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return out
}

// allFlagNames lists every flag of every command under root, once.
func allFlagNames(root *cobra.Command) []string {
	seen := map[string]bool{}
	var out []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if !seen[f.Name] && f.Name != "help" {
				seen[f.Name] = true
				out = append(out, f.Name)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return out
}

// distance is the edit distance between a and b, a swap of two
// neighbouring letters counting as one edit ("wiat" is one from "wait").
func distance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
