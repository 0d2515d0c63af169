// Package deploy_test checks Outpost's deployment files statically: the
// systemd units, the Dockerfile, the Compose file, the Kubernetes manifests
// and the CDN files they carry, and the walk-through in README.md. No
// container engine, cluster or systemd instance is needed; where a real
// tool is installed (systemd-analyze, systemd-sysusers) it is run too.
//
// Every command line in those files is checked against the real binary:
// the test builds `outpost` from this checkout, asks it for its commands and
// flags, and runs each command line with --check on the CDN file that the
// deployment would mount, so a renamed flag or an invalid file fails here
// rather than on a host.
package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/config"
)

const (
	// configPath is where every deployment puts the CDN file.
	configPath = "/etc/outpost/cdn.yaml"
	// popGrace is how long a PoP gives in-flight requests after its drain
	// delay (README.md, "Shutdown"): stop timeouts must cover drain + this.
	popGrace = 30 * time.Second
	// dnsGrace is how long the DNS server gives TCP queries in progress.
	dnsGrace = 5 * time.Second
)

// binary is the outpost binary built from this checkout, once per run.
var binary struct {
	once sync.Once
	path string
	err  error
	dir  string
}

// TestMain removes the binary's directory after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
	os.Exit(code)
}

// outpost returns the path of the outpost binary built from the repository
// root (the parent of this module).
func outpost(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		dir, err := os.MkdirTemp("", "outpost-deploy-test-")
		if err != nil {
			binary.err = err
			return
		}
		binary.dir = dir
		path := filepath.Join(dir, "outpost")
		cmd := exec.Command("go", "build", "-o", path, "./cmd/outpost")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			binary.err = fmt.Errorf("go build ./cmd/outpost: %v\n%s", err, out)
			return
		}
		binary.path = path
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

// run runs the outpost binary with args and returns its combined output
// and exit code.
func run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(outpost(t), args...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	default:
		t.Fatalf("outpost %s: %v", strings.Join(args, " "), err)
		return "", -1
	}
}

var (
	commandLine = regexp.MustCompile(`(?m)^  ([a-z]+) `)
	// A flag line of -h: "  -name" for a boolean, "  -name type" for a
	// flag that takes a value (Go's flag package; a one-letter flag's
	// description may follow on the same line after a tab).
	flagLine = regexp.MustCompile(`(?m)^  -([a-z][a-z0-9-]*)(?: ([a-z0-9]+))?(?:\t|$)`)
)

// usage caches what the binary says about its commands: "" → the command
// list, a command's name → its flags.
var usage sync.Map

// subcommands returns the commands that `outpost help` lists.
func subcommands(t *testing.T) []string {
	t.Helper()
	if v, ok := usage.Load(""); ok {
		return v.([]string)
	}
	out, code := run(t, "help")
	if code != 0 {
		t.Fatalf("outpost help: exit %d\n%s", code, out)
	}
	var names []string
	for _, m := range commandLine.FindAllStringSubmatch(out, -1) {
		names = append(names, m[1])
	}
	if len(names) == 0 {
		t.Fatalf("outpost help lists no commands:\n%s", out)
	}
	usage.Store("", names)
	return names
}

// flagsOf returns the flags that `outpost sub -h` lists, each mapped to
// whether it takes a value (false for booleans).
func flagsOf(t *testing.T, sub string) map[string]bool {
	t.Helper()
	if v, ok := usage.Load(sub); ok {
		return v.(map[string]bool)
	}
	out, code := run(t, sub, "-h")
	if code != 0 {
		t.Fatalf("outpost %s -h: exit %d\n%s", sub, code, out)
	}
	flags := make(map[string]bool)
	for _, m := range flagLine.FindAllStringSubmatch(out, -1) {
		flags[m[1]] = m[2] != ""
	}
	if len(flags) == 0 {
		t.Fatalf("outpost %s -h lists no flags:\n%s", sub, out)
	}
	usage.Store(sub, flags)
	return flags
}

// commandCheck is a command line found in a deployment file.
type commandCheck struct {
	where string   // the file and place, for messages
	args  []string // after the binary: subcommand, flags
	// files maps the paths the deployment mounts (configPath) to the local
	// files mounted there.
	files map[string]string
}

// checkCommand fails t unless c's subcommand exists, every flag it uses
// exists, --config is configPath, and, for subcommands that have --check,
// the command line passes with --check on the mounted file. It returns
// the value of each flag.
func checkCommand(t *testing.T, c commandCheck) map[string]string {
	t.Helper()
	if len(c.args) == 0 {
		t.Fatalf("%s: empty command", c.where)
	}
	sub := c.args[0]
	if !slices.Contains(subcommands(t), sub) {
		t.Fatalf("%s: %q is not an outpost command (have %v)", c.where, sub, subcommands(t))
	}
	known := flagsOf(t, sub)
	values := make(map[string]string)
	local := []string{sub}
	for i := 1; i < len(c.args); i++ {
		a := c.args[i]
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") {
			t.Errorf("%s: unexpected argument %q (outpost roles take flags only)", c.where, a)
			continue
		}
		takesValue, ok := known[name]
		if !ok {
			t.Errorf("%s: outpost %s has no flag -%s (have %v)", c.where, sub, name, slices.Sorted(maps.Keys(known)))
			continue
		}
		if takesValue && !hasValue {
			if i+1 >= len(c.args) {
				t.Errorf("%s: flag -%s has no value", c.where, name)
				continue
			}
			i++
			value = c.args[i]
		}
		values[name] = value
		if f, ok := c.files[value]; ok {
			value = f
		}
		if takesValue || hasValue {
			local = append(local, "--"+name+"="+value)
		} else {
			local = append(local, "--"+name)
		}
	}
	if _, ok := known["config"]; ok && values["config"] != configPath {
		t.Errorf("%s: --config is %q, want %q (where the CDN file is mounted)", c.where, values["config"], configPath)
	}
	if _, ok := known["check"]; ok && !t.Failed() {
		out, code := run(t, append(local, "--check")...)
		if code != 0 || !strings.Contains(out, ": ok") {
			t.Errorf("%s: outpost %s --check: exit %d\n%s", c.where, strings.Join(local, " "), code, out)
		}
	}
	return values
}

// parseCDN parses a CDN file with the real config parser.
func parseCDN(t *testing.T, path string) *config.Config {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse(path, data)
	if err != nil {
		t.Fatalf("the CDN file does not parse:\n%v", err)
	}
	return c
}

// maxDrain is the longest drain of the file's PoPs.
func maxDrain(c *config.Config) time.Duration {
	var d time.Duration
	for _, p := range c.POPs {
		d = max(d, p.Drain)
	}
	return d
}

// port returns the port of a host:port address.
func port(t *testing.T, addr string) string {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		t.Fatalf("address %q has no port", addr)
	}
	return addr[i+1:]
}

// host returns the host of a host:port address, without brackets.
func host(addr string) string {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return addr
	}
	return strings.Trim(addr[:i], "[]")
}

// writeFiles writes name → content into a new temporary directory and
// returns it.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// readFile returns the content of a file of this directory.
func readFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
}
