package hafeedbin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// module is the hafeed module's path.
const module = "github.com/hafeed/hafeed"

// ErrNoModule says that the go command, run in the current folder, does not
// know the hafeed module.
var ErrNoModule = errors.New("not inside the hafeed module: run from the repository")

// Build builds cmd/hafeed into the file out.
func Build(ctx context.Context, out string) error {
	dir, err := ModuleDir(ctx)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-buildvcs=false", "-o", out, "./cmd/hafeed")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building hafeed (go build ./cmd/hafeed in %s): %v\n%s", dir, err, b)
	}
	return nil
}

// ModuleDir is the folder of the hafeed module as the go command in the
// current folder resolves it.
func ModuleDir(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", module)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	dir := strings.TrimSpace(string(b))
	if err != nil || dir == "" {
		return "", fmt.Errorf("%w (go list -m %s: %v %s)", ErrNoModule, module, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return dir, nil
}
