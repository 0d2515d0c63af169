package deploy_test

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/outpost-cdn/outpost/config"
)

// instruction is one Dockerfile instruction.
type instruction struct {
	cmd  string // upper case: FROM, RUN, …
	args string
	line int
}

// parseDockerfile reads a Dockerfile's instructions: comments and parser
// directives dropped, backslash continuations joined.
func parseDockerfile(t *testing.T, name string) []instruction {
	t.Helper()
	var out []instruction
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(string(readFile(t, name)), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if rest, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(rest + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args), start})
		cur.Reset()
	}
	if cur.Len() > 0 {
		t.Fatalf("%s: the last instruction ends in a continuation", name)
	}
	return out
}

// stage is one FROM … section of a Dockerfile.
type stage struct {
	from, name string
	body       []instruction
}

func stages(ins []instruction) (args []instruction, out []stage) {
	for _, in := range ins {
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			f = slices.DeleteFunc(f, func(s string) bool { return strings.HasPrefix(s, "--platform=") })
			s := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			out = append(out, s)
			continue
		}
		if len(out) == 0 {
			args = append(args, in)
			continue
		}
		out[len(out)-1].body = append(out[len(out)-1].body, in)
	}
	return args, out
}

// find returns the instructions of ins with command cmd.
func find(ins []instruction, cmd string) []instruction {
	var out []instruction
	for _, in := range ins {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// TestDockerfile checks the image recipe statically: a Go builder of the
// module's Go version making a static, trimmed, versioned binary; a
// minimal runtime stage that runs it as non-root; the entrypoint; and the
// ports of the example files.
func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(t, "Dockerfile")
	globalArgs, st := stages(ins)
	if len(st) < 2 {
		t.Fatalf("want a multi-stage build, got %d stages", len(st))
	}
	build, final := st[0], st[len(st)-1]
	var buildRun string
	for _, r := range find(build.body, "RUN") {
		if strings.Contains(r.args, "go build") {
			buildRun = r.args
		}
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(readFile(t, "../go.mod"))
	if goVersion == nil {
		t.Fatal("../go.mod has no go directive")
	}
	exposed := strings.Join(strings.Fields(strings.Join(argsOf(find(final.body, "EXPOSE")), " ")), " ")

	tests := []struct {
		name string
		ok   bool
		why  string
	}{
		{"builder is golang of the module's Go version",
			strings.HasPrefix(build.from, "golang:") && slices.ContainsFunc(globalArgs, func(a instruction) bool {
				return a.args == "GO_VERSION="+string(goVersion[1])
			}) && build.from == "golang:${GO_VERSION}",
			"FROM golang:${GO_VERSION} with ARG GO_VERSION=" + string(goVersion[1]) + " (go.mod's go version)"},
		{"builder stage is named and copied from",
			build.name != "" && slices.ContainsFunc(find(final.body, "COPY"), func(c instruction) bool {
				return strings.Contains(c.args, "--from="+build.name+" ")
			}),
			"the runtime stage copies the binary --from the named builder"},
		{"static binary", strings.Contains(buildRun, "CGO_ENABLED=0"), "go build with CGO_ENABLED=0"},
		{"trimmed paths", strings.Contains(buildRun, "-trimpath"), "go build -trimpath"},
		{"stripped", strings.Contains(buildRun, `-ldflags "-s -w `), `go build -ldflags "-s -w …"`},
		{"version stamped", strings.Contains(buildRun, "-X main.version=${VERSION}") &&
			len(find(build.body, "ARG")) > 0 && slices.ContainsFunc(find(build.body, "ARG"), func(a instruction) bool {
			return strings.HasPrefix(a.args, "VERSION")
		}),
			"-X main.version=${VERSION} with ARG VERSION in the build stage"},
		{"main.version exists", bytes.Contains(readFile(t, "../cmd/outpost/version.go"), []byte("var version ")),
			"cmd/outpost declares var version (the -X target)"},
		{"builds ./cmd/outpost", strings.Contains(buildRun, "./cmd/outpost") && dirExists("../cmd/outpost"),
			"go build … ./cmd/outpost, from the repository root as context"},
		{"minimal runtime base",
			final.from == "scratch" || (strings.HasPrefix(final.from, "gcr.io/distroless/static") && strings.HasSuffix(final.from, ":nonroot")),
			"FROM gcr.io/distroless/static-…:nonroot or scratch"},
		{"non-root user", nonRootUser(find(final.body, "USER")), "a USER that is neither root nor 0, as uid:gid numbers"},
		{"exec-form entrypoint", entrypoint(find(final.body, "ENTRYPOINT")) == "/outpost",
			`ENTRYPOINT ["/outpost"]`},
		{"no healthcheck", len(find(final.body, "HEALTHCHECK")) == 0,
			"distroless has no shell: orchestrators probe /healthz (documented in the file)"},
	}
	for _, p := range examplePorts(t) {
		tests = append(tests, struct {
			name string
			ok   bool
			why  string
		}{"exposes " + p, slices.Contains(strings.Fields(exposed), p), "EXPOSE " + p + " (used by compose-cdn.yaml or the Kubernetes manifests)"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.ok {
				t.Errorf("want %s", tt.why)
			}
		})
	}
}

func argsOf(ins []instruction) []string {
	var out []string
	for _, in := range ins {
		out = append(out, in.args)
	}
	return out
}

func dirExists(name string) bool {
	fi, err := os.Stat(name)
	return err == nil && fi.IsDir()
}

// nonRootUser reports whether the last USER is a numeric non-root uid.
func nonRootUser(users []instruction) bool {
	if len(users) == 0 {
		return false
	}
	uid, _, _ := strings.Cut(users[len(users)-1].args, ":")
	return regexp.MustCompile(`^[1-9][0-9]*$`).MatchString(uid)
}

// entrypoint returns the program of an exec-form ENTRYPOINT, or "".
func entrypoint(ins []instruction) string {
	if len(ins) != 1 {
		return ""
	}
	var argv []string
	if err := json.Unmarshal([]byte(ins[0].args), &argv); err != nil || len(argv) != 1 {
		return ""
	}
	return argv[0]
}

// examplePorts are the container ports the example files use, as EXPOSE
// writes them (port/proto).
func examplePorts(t *testing.T) []string {
	t.Helper()
	c := parseCDN(t, "compose-cdn.yaml")
	set := map[string]bool{}
	for _, p := range c.POPs {
		set[port(t, p.Listen)+"/tcp"] = true
		set[port(t, p.Admin)+"/tcp"] = true
	}
	for _, l := range c.DNS.Listen {
		set[port(t, l)+"/udp"] = true
		set[port(t, l)+"/tcp"] = true
	}
	set[port(t, c.DNS.Admin)+"/tcp"] = true
	set["8000/tcp"] = true // outpost origin in compose.yaml
	return slices.Sorted(func(yield func(string) bool) {
		for k := range set {
			if !yield(k) {
				return
			}
		}
	})
}

// composeFile is the part of the Compose specification that compose.yaml
// uses. Decoding is strict, so a misspelt key fails the test; add fields
// here when the file needs more of the specification.
type composeFile struct {
	Name     string                    `yaml:"name"`
	Outpost  yaml.Node                 `yaml:"x-outpost"` // the shared settings, merged into each service
	Services map[string]composeService `yaml:"services"`
	Networks map[string]struct {
		IPAM struct {
			Config []struct {
				Subnet string `yaml:"subnet"`
			} `yaml:"config"`
		} `yaml:"ipam"`
	} `yaml:"networks"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command []string `yaml:"command"`
	// Environment is the map form only.
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	ReadOnly    bool              `yaml:"read_only"`
	CapDrop     []string          `yaml:"cap_drop"`
	CapAdd      []string          `yaml:"cap_add"`
	SecurityOpt []string          `yaml:"security_opt"`
	Ulimits     map[string]struct {
		Soft int `yaml:"soft"`
		Hard int `yaml:"hard"`
	} `yaml:"ulimits"`
	Restart  string `yaml:"restart"`
	Networks map[string]struct {
		IPv4Address string `yaml:"ipv4_address"`
	} `yaml:"networks"`
	Ports           []string `yaml:"ports"`
	DependsOn       []string `yaml:"depends_on"`
	StopGracePeriod string   `yaml:"stop_grace_period"`
}

// mount is a short-syntax volume: source:target[:mode].
type mount struct{ source, target, mode string }

func parseMount(v string) mount {
	f := strings.Split(v, ":")
	m := mount{source: f[0]}
	if len(f) > 1 {
		m.target = f[1]
	}
	if len(f) > 2 {
		m.mode = f[2]
	}
	return m
}

// TestCompose checks compose.yaml against compose-cdn.yaml: the roles, the
// commands (run with --check), the read-only mounts, the addresses and
// ports each PoP and the DNS server use, and the stop grace periods.
func TestCompose(t *testing.T) {
	var f composeFile
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, "compose.yaml")))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	cdn := parseCDN(t, "compose-cdn.yaml")
	if len(f.Networks) != 1 {
		t.Fatalf("want one network, got %d", len(f.Networks))
	}
	var netName string
	var subnet netip.Prefix
	for name, n := range f.Networks {
		netName = name
		if len(n.IPAM.Config) != 1 {
			t.Fatalf("network %s: want one ipam subnet", name)
		}
		var err error
		if subnet, err = netip.ParsePrefix(n.IPAM.Config[0].Subnet); err != nil {
			t.Fatalf("network %s: %v", name, err)
		}
	}

	roles := map[string][]string{} // subcommand → services
	pops := map[string]string{}    // PoP name → service
	for _, name := range slices.Sorted(mapsKeys(f.Services)) {
		s := f.Services[name]
		t.Run(name, func(t *testing.T) {
			if len(s.Command) == 0 {
				t.Fatal("no command")
			}
			role := s.Command[0]
			roles[role] = append(roles[role], name)

			// One image, built from the repository root with deploy/Dockerfile.
			if s.Image != "outpost:dev" || s.Build.Context != ".." || s.Build.Dockerfile != "deploy/Dockerfile" {
				t.Errorf("image %q built from %q with %q, want outpost:dev from .. with deploy/Dockerfile", s.Image, s.Build.Context, s.Build.Dockerfile)
			}
			if _, err := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil {
				t.Errorf("build: %v", err)
			}
			// Locked down.
			if !s.ReadOnly || !slices.Equal(s.CapDrop, []string{"ALL"}) || len(s.CapAdd) > 0 || !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
				t.Errorf("want read_only, cap_drop [ALL], no cap_add and no-new-privileges; got %v %v %v %v", s.ReadOnly, s.CapDrop, s.CapAdd, s.SecurityOpt)
			}
			// Mounts: all read-only, all sources exist.
			files := map[string]string{}
			for _, v := range s.Volumes {
				m := parseMount(v)
				if m.mode != "ro" {
					t.Errorf("volume %q is not read-only", v)
				}
				if _, err := os.Stat(m.source); err != nil {
					t.Errorf("volume %q: %v", v, err)
				}
				files[m.target] = m.source
			}
			if files[configPath] != "./compose-cdn.yaml" {
				t.Errorf("%s is mounted from %q, want ./compose-cdn.yaml", configPath, files[configPath])
			}
			// The network map the file names is mounted where the file
			// expects it (relative to the file).
			if cdn.DNS.Networks != "" {
				dir, err := filepath.Abs(filepath.Dir(cdn.Path))
				if err != nil {
					t.Fatal(err)
				}
				rel, err := filepath.Rel(dir, cdn.DNS.Networks)
				if err != nil {
					t.Fatal(err)
				}
				target := path.Join(path.Dir(configPath), filepath.ToSlash(rel))
				src, ok := files[target]
				if abs, _ := filepath.Abs(src); !ok || abs != cdn.DNS.Networks {
					t.Errorf("the network map %s must be mounted at %s; got %q", cdn.DNS.Networks, target, src)
				}
			}

			flags := checkCommand(t, commandCheck{where: "compose.yaml " + name, args: s.Command, files: files})
			ip := s.Networks[netName].IPv4Address
			addr, err := netip.ParseAddr(ip)
			if err != nil || !subnet.Contains(addr) {
				t.Fatalf("ipv4_address %q is not in the network's subnet %s", ip, subnet)
			}
			grace, err := time.ParseDuration(s.StopGracePeriod)
			if err != nil {
				t.Fatalf("stop_grace_period: %v", err)
			}

			// The purge token: the PoPs alone get it, from the shell that
			// runs compose, never as a literal in the file.
			tokenRef, hasToken := s.Environment[config.TokenEnv]
			switch {
			case role == "pop" && !regexp.MustCompile(`^\$\{`+config.TokenEnv+`(:?-[^}]*)?\}$`).MatchString(tokenRef):
				t.Errorf("environment %s = %q, want ${%s:-} (the token from the shell, never in the file)", config.TokenEnv, tokenRef, config.TokenEnv)
			case role != "pop" && hasToken:
				t.Errorf("environment has %s: only the PoPs need the purge token", config.TokenEnv)
			}
			for k := range s.Environment {
				if k != config.TokenEnv {
					t.Errorf("unexpected environment variable %s", k)
				}
			}

			var wantPorts []string // container ports to publish, as port[/udp]
			switch role {
			case "pop":
				p, err := cdn.POP(flags["pop"])
				if err != nil {
					t.Fatal(err)
				}
				pops[p.Name] = name
				if host(p.Listen) != ip || host(p.Admin) != ip {
					t.Errorf("PoP %s listens on %s and %s, want the container's address %s", p.Name, p.Listen, p.Admin, ip)
				}
				wantPorts = []string{port(t, p.Listen), port(t, p.Admin)}
				if need := p.Drain + popGrace; grace <= need {
					t.Errorf("stop_grace_period %s, want more than drain + grace = %s", grace, need)
				}
				if !slices.Contains(s.DependsOn, "origin") {
					t.Errorf("depends_on %v, want origin", s.DependsOn)
				}
			case "dns":
				for _, l := range cdn.DNS.Listen {
					if host(l) != ip && host(l) != "0.0.0.0" {
						t.Errorf("dns.listen %s is not the container's address %s", l, ip)
					}
					wantPorts = append(wantPorts, port(t, l)+"/udp", port(t, l)+"/tcp")
				}
				wantPorts = append(wantPorts, port(t, cdn.DNS.Admin))
				if grace <= dnsGrace {
					t.Errorf("stop_grace_period %s, want more than %s", grace, dnsGrace)
				}
			case "origin":
				wantPorts = []string{port(t, flags["listen"])}
				for _, svc := range cdn.Services {
					for _, srv := range svc.Origin.Servers {
						if srv.URL.Hostname() != name || srv.URL.Port() != port(t, flags["listen"]) {
							t.Errorf("service %s's origin %s is not this service (%s:%s)", svc.Name, srv.URL, name, port(t, flags["listen"]))
						}
					}
				}
			}
			var published []string
			for _, p := range s.Ports {
				f := strings.Split(p, ":")
				if len(f) != 3 || f[0] != "127.0.0.1" {
					t.Errorf("port %q: want 127.0.0.1:HOST:CONTAINER (never published on every interface)", p)
					continue
				}
				published = append(published, f[2])
			}
			for _, p := range wantPorts {
				if !slices.Contains(published, p) {
					t.Errorf("container port %s is not published (ports %v)", p, s.Ports)
				}
			}
		})
	}

	if len(roles["origin"]) != 1 || len(roles["dns"]) != 1 || len(roles["pop"]) != 3 {
		t.Errorf("roles %v: want one origin, one dns and three pop services", roles)
	}
	for _, p := range cdn.POPs {
		if pops[p.Name] == "" {
			t.Errorf("PoP %s of compose-cdn.yaml has no service", p.Name)
		}
	}
}

// TestComposeCDNFile checks that compose-cdn.yaml is a whole CDN: zone,
// DNS, three PoPs, and DNS answers for each.
func TestComposeCDNFile(t *testing.T) {
	t.Setenv(config.TokenEnv, "") // what the file itself says
	c := parseCDN(t, "compose-cdn.yaml")
	checks := []struct {
		name string
		ok   func(*config.Config) bool
	}{
		{"has a zone", func(c *config.Config) bool { return c.Zone != "" }},
		{"has a dns section", func(c *config.Config) bool { return c.DNS.Enabled() && c.DNS.Admin != "" }},
		{"has three PoPs", func(c *config.Config) bool { return len(c.POPs) == 3 }},
		{"holds no purge token (compose.yaml passes it in the environment)", func(c *config.Config) bool { return c.Purge.Token == "" }},
		{"every PoP has an answer address", func(c *config.Config) bool {
			return !slices.ContainsFunc(c.POPs, func(p config.POP) bool { return !p.Address.IsValid() })
		}},
		{"a service hostname is in the zone", func(c *config.Config) bool {
			return slices.ContainsFunc(c.Services, func(s config.Service) bool {
				return slices.ContainsFunc(s.Hostnames, func(h string) bool { return strings.HasSuffix(h, "."+c.Zone) })
			})
		}},
	}
	for _, tt := range checks {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.ok(c) {
				t.Error("no")
			}
		})
	}
}

func mapsKeys[M ~map[K]V, K comparable, V any](m M) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
