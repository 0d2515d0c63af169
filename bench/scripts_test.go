package bench

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// TestScriptsParse checks that every benchmark script in the repository
// parses (`bash -n`): they run by hand on a quiet machine, not in CI, so
// nothing else notices an edit that breaks one until someone needs it.
func TestScriptsParse(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	scripts, err := filepath.Glob("*.sh")
	if err != nil {
		t.Fatal(err)
	}
	harness, err := filepath.Glob("harness/*.sh")
	if err != nil {
		t.Fatal(err)
	}
	scripts = append(scripts, harness...)
	if len(scripts) < 5 {
		t.Fatalf("found only %v: run from the bench directory", scripts)
	}
	for _, s := range scripts {
		t.Run(s, func(t *testing.T) {
			if out, err := exec.Command(bash, "-n", s).CombinedOutput(); err != nil {
				t.Errorf("bash -n %s: %v\n%s", s, err, out)
			}
		})
	}
}
