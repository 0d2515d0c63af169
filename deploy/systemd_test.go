package deploy_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// unit is a parsed systemd unit file: section → key → values in order (a
// key may be given more than once).
type unit map[string]map[string][]string

// parseUnit reads a unit file: [Section] headers, Key=Value lines, '#' and
// ';' comments, and backslash line continuations.
func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	u := make(unit)
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, path)))
	lineNo, pending := 0, ""
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if pending == "" && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if rest, ok := strings.CutSuffix(line, `\`); ok {
			pending += rest + " "
			continue
		}
		line, pending = pending+line, ""
		if strings.HasPrefix(line, "[") {
			if !strings.HasSuffix(line, "]") {
				t.Fatalf("%s:%d: bad section header %q", path, lineNo, line)
			}
			section = line[1 : len(line)-1]
			if u[section] != nil {
				t.Errorf("%s:%d: section [%s] given twice", path, lineNo, section)
			}
			u[section] = make(map[string][]string)
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			t.Fatalf("%s:%d: want Key=Value inside a section, got %q", path, lineNo, line)
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		u[section][key] = append(u[section][key], value)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// get returns the one value of section.key; "" if it is not set.
func (u unit) get(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	switch len(v) {
	case 0:
		return ""
	case 1:
		return v[0]
	default:
		t.Errorf("[%s] %s is set %d times, want once", section, key, len(v))
		return v[len(v)-1]
	}
}

// units are the shipped unit files: each runs one role, and the instance
// name stands for the PoP name of template units.
var units = []struct {
	file     string
	role     string // the outpost subcommand
	template bool   // a template unit: %i is the PoP name
	stopMin  time.Duration
	// notify: the role speaks sd_notify (package sdnotify): Type=notify
	// with a watchdog and a logs directory; else Type=exec.
	notify bool
}{
	{"systemd/outpost-pop@.service", "pop", true, 0, true},
	{"systemd/outpost-dns.service", "dns", false, dnsGrace, false},
}

// notifyUnit is what a unit of a role that speaks sd_notify must say.
var notifyUnit = []struct{ key, want string }{
	{"Type", "notify"},
	{"NotifyAccess", "main"},
	{"WatchdogSec", "30s"},
	{"LogsDirectory", "outpost"},
}

// hardening is what every unit must say, exactly.
var hardening = []struct{ key, want string }{
	{"User", "outpost"},
	{"Group", "outpost"},
	{"NoNewPrivileges", "yes"},
	{"RestrictSUIDSGID", "yes"},
	{"CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"},
	{"AmbientCapabilities", "CAP_NET_BIND_SERVICE"},
	{"ProtectSystem", "strict"},
	{"ProtectHome", "yes"},
	{"PrivateTmp", "yes"},
	{"PrivateDevices", "yes"},
	{"PrivateMounts", "yes"},
	{"ProtectKernelTunables", "yes"},
	{"ProtectKernelModules", "yes"},
	{"ProtectKernelLogs", "yes"},
	{"ProtectControlGroups", "yes"},
	{"ProtectClock", "yes"},
	{"ProtectHostname", "yes"},
	{"RestrictNamespaces", "yes"},
	{"RestrictRealtime", "yes"},
	{"LockPersonality", "yes"},
	{"MemoryDenyWriteExecute", "yes"},
	{"SystemCallArchitectures", "native"},
	{"KillSignal", "SIGTERM"},
	{"Restart", "on-failure"},
}

// breaksNetworkServer are settings that would cut a network server off.
var breaksNetworkServer = []struct{ key, why string }{
	{"PrivateNetwork", "the service would have no network but loopback"},
	{"PrivateUsers", "CAP_NET_BIND_SERVICE would not apply to the host's network"},
	{"IPAddressDeny", "users and origins are anywhere"},
	{"DynamicUser", "the units use the fixed outpost user of outpost.sysusers.conf"},
}

func TestSystemdUnits(t *testing.T) {
	production := readmeCDN(t)
	for _, tt := range units {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			u := parseUnit(t, tt.file)
			svc := u["Service"]
			if svc == nil {
				t.Fatal("no [Service] section")
			}
			for _, h := range hardening {
				if got := u.get(t, "Service", h.key); got != h.want {
					t.Errorf("[Service] %s=%q, want %q", h.key, got, h.want)
				}
			}
			if tt.notify {
				for _, h := range notifyUnit {
					if got := u.get(t, "Service", h.key); got != h.want {
						t.Errorf("[Service] %s=%q, want %q", h.key, got, h.want)
					}
				}
			} else if got := u.get(t, "Service", "Type"); got != "exec" {
				t.Errorf("[Service] Type=%q, want exec: the role sends no READY=1", got)
			}
			for _, b := range breaksNetworkServer {
				if v, ok := svc[b.key]; ok {
					t.Errorf("[Service] %s=%v is set: %s", b.key, v, b.why)
				}
			}
			families := strings.Fields(u.get(t, "Service", "RestrictAddressFamilies"))
			slices.Sort(families)
			if !slices.Equal(families, []string{"AF_INET", "AF_INET6", "AF_UNIX"}) {
				t.Errorf("RestrictAddressFamilies=%v, want AF_INET AF_INET6 AF_UNIX", families)
			}
			if got := svc["SystemCallFilter"]; !slices.Contains(got, "@system-service") {
				t.Errorf("SystemCallFilter=%v, want @system-service among them", got)
			}
			if n, err := strconv.Atoi(u.get(t, "Service", "LimitNOFILE")); err != nil || n < 65536 {
				t.Errorf("LimitNOFILE=%q, want a number ≥ 65536", u.get(t, "Service", "LimitNOFILE"))
			}
			if got := svc["ExecReload"]; len(got) == 0 || got[len(got)-1] != "/bin/kill -HUP $MAINPID" {
				t.Errorf("ExecReload=%v, want /bin/kill -HUP $MAINPID last", got)
			}
			if !slices.Contains(u["Unit"]["After"], "network-online.target") || !slices.Contains(u["Unit"]["Wants"], "network-online.target") {
				t.Errorf("[Unit] must want and start after network-online.target (the listen addresses must exist)")
			}
			if got := u.get(t, "Install", "WantedBy"); got != "multi-user.target" {
				t.Errorf("[Install] WantedBy=%q, want multi-user.target", got)
			}

			// Stopping takes drain + grace: the stop timeout must be longer.
			stop, err := time.ParseDuration(u.get(t, "Service", "TimeoutStopSec"))
			if err != nil {
				t.Fatalf("TimeoutStopSec: %v", err)
			}
			need := tt.stopMin
			if tt.role == "pop" {
				need = maxDrain(production) + popGrace
			}
			if stop <= need {
				t.Errorf("TimeoutStopSec=%s, want more than %s (drain of README's CDN file + grace)", stop, need)
			}

			// Every outpost command line is a real one, and passes --check
			// on README's CDN file for every PoP it could run.
			files := map[string]string{configPath: production.Path}
			var lines []string
			for _, key := range []string{"ExecStartPre", "ExecStart", "ExecReload"} {
				for _, l := range svc[key] {
					if strings.HasPrefix(l, "/usr/local/bin/outpost ") {
						lines = append(lines, l)
					}
				}
			}
			if len(svc["ExecStart"]) != 1 || !strings.HasPrefix(svc["ExecStart"][0], "/usr/local/bin/outpost "+tt.role+" ") {
				t.Fatalf("ExecStart=%v, want one /usr/local/bin/outpost %s …", svc["ExecStart"], tt.role)
			}
			names := []string{""}
			if tt.template {
				names = nil
				for _, p := range production.POPs {
					names = append(names, p.Name)
				}
			}
			for _, l := range lines {
				for _, name := range names {
					args := strings.Fields(strings.ReplaceAll(l, "%i", name))[1:]
					v := checkCommand(t, commandCheck{where: tt.file + ": " + l, args: args, files: files})
					if tt.template && v["pop"] != name {
						t.Errorf("%s: --pop %q, want the instance name %%i", l, v["pop"])
					}
				}
			}
		})
	}
}

// TestSysusers checks that outpost.sysusers.conf makes the account the
// units run as, and has systemd-sysusers apply it to an empty root.
func TestSysusers(t *testing.T) {
	const file = "systemd/outpost.sysusers.conf"
	var users []string
	for line := range strings.Lines(string(readFile(t, file))) {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if f[0] != "u" || len(f) < 3 {
			t.Errorf("%s: unexpected line %q (want one u line)", file, strings.TrimSpace(line))
			continue
		}
		users = append(users, f[1])
	}
	for _, tt := range units {
		user := parseUnit(t, tt.file)["Service"]["User"]
		if len(user) != 1 || !slices.Contains(users, user[0]) {
			t.Errorf("%s runs as %v, which %s does not make (it makes %v)", tt.file, user, file, users)
		}
	}

	tool, err := exec.LookPath("systemd-sysusers")
	if err != nil {
		t.Skip("systemd-sysusers is not installed (apt-get install systemd); the file was checked statically only")
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(file)
	out, err := exec.Command(tool, "--root="+root, "--dry-run", abs).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "outpost") {
		t.Errorf("systemd-sysusers --dry-run %s: %v\n%s", file, err, out)
	}
}

// TestSystemdAnalyzeVerify runs `systemd-analyze verify` on the units, when
// it is installed. It checks every directive's name and value; any output
// counts as a failure (verify exits 0 on unknown keys). The binary path is
// pointed at an existing executable, as /usr/local/bin/outpost is not
// installed here.
func TestSystemdAnalyzeVerify(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (apt-get install systemd); the units were checked statically only (TestSystemdUnits)")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var args []string
	for _, tt := range units {
		data := bytes.ReplaceAll(readFile(t, tt.file), []byte("/usr/local/bin/outpost"), []byte(self))
		name := filepath.Base(tt.file)
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if tt.template {
			name = strings.Replace(name, "@.", "@prg.", 1) // an instance of the template
		}
		args = append(args, filepath.Join(dir, name))
	}
	flags := []string{"verify", "--man=no"}
	if systemdVersion(tool) >= 250 {
		// Report the units' own problems only, not those of the system
		// units they order themselves after.
		flags = append(flags, "--recursive-errors=no")
	}
	cmd := exec.Command(tool, append(flags, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// securityScore is how the deploy README states the units' score, with
// the systemd version it was measured with.
var securityScore = regexp.MustCompile("`systemd-analyze security\\s+outpost-pop@prg` rates the\\s+result ([0-9.]+), \"([A-Z]+)\", with systemd (\\d+)")

// overallExposure is systemd-analyze security's last line.
var overallExposure = regexp.MustCompile(`Overall exposure level for (\S+): ([0-9.]+) ([A-Z]+)`)

// TestSystemdAnalyzeSecurity runs `systemd-analyze security --offline=true`
// on each unit and checks the score and rating the deploy README states
// (the DNS unit's hardening is the PoP's: one score for both). Scores are
// weighed differently by other systemd versions, so on another version
// than the README names the test reports what it got and skips.
func TestSystemdAnalyzeSecurity(t *testing.T) {
	m := securityScore.FindStringSubmatch(string(readFile(t, "README.md")))
	if m == nil {
		t.Fatalf("README.md does not state the score as %s", securityScore)
	}
	score, rating, documented := m[1], m[2], m[3]
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (apt-get install systemd); the README's security score " + score + " is unchecked")
	}
	version := systemdVersion(tool)
	if version < 250 {
		t.Skipf("systemd %d's systemd-analyze security has no --offline (250 and later)", version)
	}
	var other []string
	for _, tt := range units {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			cmd := exec.Command(tool, "security", "--offline=true", "--no-pager", tt.file)
			cmd.Env = append(os.Environ(), "SYSTEMD_COLORS=0")
			out, err := cmd.CombinedOutput()
			got := overallExposure.FindSubmatch(out)
			if err != nil || got == nil {
				t.Fatalf("systemd-analyze security --offline=true %s: %v\n%s", tt.file, err, out)
			}
			if strconv.Itoa(version) != documented {
				other = append(other, fmt.Sprintf("%s %s %s", tt.file, got[2], got[3]))
				return
			}
			if string(got[2]) != score || string(got[3]) != rating {
				t.Errorf("systemd %d rates %s %s %s; README.md says %s %s: fix the README (or the unit)",
					version, tt.file, got[2], got[3], score, rating)
			}
		})
	}
	if len(other) > 0 {
		t.Skipf("README.md states the score for systemd %s; systemd %d rates: %s", documented, version, strings.Join(other, "; "))
	}
}

// systemdVersion returns the version number `tool --version` reports
// ("systemd 252 (252.38-1~deb12u1)"), or 0.
func systemdVersion(tool string) int {
	out, err := exec.Command(tool, "--version").Output()
	if err != nil {
		return 0
	}
	f := strings.Fields(string(out))
	if len(f) < 2 || f[0] != "systemd" {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}
