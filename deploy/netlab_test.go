package deploy_test

import (
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestNetlabScript checks deploy/netlab, the network-namespace lab script:
// it is executable bash, prints its usage, and passes only flags that
// `outpost netlab up` has. (The lab itself is tested by TestNetlab in
// netlab/, as root.)
func TestNetlabScript(t *testing.T) {
	fi, err := os.Stat("netlab")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("netlab is not executable (mode %s)", fi.Mode())
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	if out, err := exec.Command(bash, "-n", "netlab").CombinedOutput(); err != nil {
		t.Fatalf("bash -n netlab: %v\n%s", err, out)
	}
	for _, tt := range []struct {
		args []string
		code int
	}{{nil, 2}, {[]string{"-h"}, 0}, {[]string{"nope"}, 2}} {
		out, err := exec.Command(bash, append([]string{"netlab"}, tt.args...)...).CombinedOutput()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tt.code || !strings.Contains(string(out), "deploy/netlab up") {
			t.Errorf("netlab %v: exit %d, want %d, with the usage; output:\n%s", tt.args, code, tt.code, out)
		}
	}
	script := string(readFile(t, "netlab"))
	line := regexp.MustCompile(`netlab up ((?:--[a-z]+ \S+ ?)+)`).FindStringSubmatch(script)
	if line == nil {
		t.Fatal("netlab does not run outpost netlab up")
	}
	help, code := run(t, "netlab", "up", "-h")
	if code != 0 {
		t.Fatalf("outpost netlab up -h: exit %d\n%s", code, help)
	}
	for _, f := range regexp.MustCompile(`--([a-z]+)`).FindAllStringSubmatch(line[1], -1) {
		if !strings.Contains(help, "  -"+f[1]+" ") {
			t.Errorf("netlab passes --%s, which outpost netlab up does not have:\n%s", f[1], help)
		}
	}
}
