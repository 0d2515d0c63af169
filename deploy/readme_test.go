package deploy_test

import (
	"io/fs"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/outpost-cdn/outpost/config"
)

// block is a fenced code block of README.md.
type block struct {
	lang string
	text string
}

// readmeBlocks returns README.md's fenced code blocks, in order.
func readmeBlocks(t *testing.T) []block {
	t.Helper()
	var out []block
	var cur *block
	for line := range strings.Lines(string(readFile(t, "README.md"))) {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			cur = &block{lang: strings.TrimPrefix(trimmed, "```")}
		case cur != nil && trimmed == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += line
		}
	}
	if cur != nil {
		t.Fatal("README.md: a code block is not closed")
	}
	return out
}

// readmeBlock returns the one code block whose first line is first.
func readmeBlock(t *testing.T, first string) string {
	t.Helper()
	var found []string
	for _, b := range readmeBlocks(t) {
		if strings.HasPrefix(b.text, first) {
			found = append(found, b.text)
		}
	}
	if len(found) != 1 {
		t.Fatalf("README.md: want one code block starting %q, found %d", first, len(found))
	}
	return found[0]
}

// readmeCDN writes README's CDN file and network map into a temporary
// directory, as cdn.yaml and networks.csv, with a purge token file as the
// README makes it (openssl rand -hex 32 > purge-token), and parses the CDN
// file.
func readmeCDN(t *testing.T) *config.Config {
	t.Helper()
	t.Setenv(config.TokenEnv, "") // the token is the file's
	dir := writeFiles(t, map[string]string{
		"cdn.yaml":     readmeBlock(t, "# "+configPath),
		"networks.csv": readmeBlock(t, "# /etc/outpost/networks.csv"),
		"purge-token":  "4f3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e\n",
	})
	return parseCDN(t, filepath.Join(dir, "cdn.yaml"))
}

// TestReadmeDocumentsEveryFile fails when a deployment file is not linked
// from README.md.
func TestReadmeDocumentsEveryFile(t *testing.T) {
	readme := string(readFile(t, "README.md"))
	var files []string
	for _, dir := range []string{"systemd", "kubernetes"} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				files = append(files, filepath.ToSlash(path))
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	files = append(files, "Dockerfile", "Dockerfile.dockerignore", "compose.yaml", "compose-cdn.yaml", "netlab")
	for _, f := range files {
		if !strings.Contains(readme, "]("+f+")") {
			t.Errorf("README.md does not link %s", f)
		}
	}
}

// TestReadmeCDNFile checks README's production CDN file and network map
// with the real parser and the real binary, for every PoP and the DNS
// server.
func TestReadmeCDNFile(t *testing.T) {
	c := readmeCDN(t)
	if !c.DNS.Enabled() {
		t.Fatal("README's CDN file has no dns section")
	}
	if len(c.DNS.NS) < 2 {
		t.Errorf("README's CDN file has %d name servers; a real rollout needs two or more", len(c.DNS.NS))
	}
	if len(c.POPs) < 2 {
		t.Errorf("README's CDN file has %d PoPs; the walk-through needs several", len(c.POPs))
	}
	if c.Purge.TokenFile == "" || filepath.Base(c.Purge.TokenFile) != "purge-token" {
		t.Errorf("README's CDN file takes its purge token from %v; want purge.token_file: purge-token, so the file holds no secret", c.Purge)
	}
	for _, p := range c.POPs {
		if !p.Address.IsValid() {
			t.Errorf("PoP %s has no IPv4 address for DNS answers", p.Name)
		}
		if p.Drain <= c.DNS.TTL {
			t.Errorf("PoP %s drains %s, not longer than the DNS TTL %s: resolvers would still send users when it stops", p.Name, p.Drain, c.DNS.TTL)
		}
	}
	files := map[string]string{configPath: c.Path}
	for _, p := range c.POPs {
		checkCommand(t, commandCheck{where: "README pop " + p.Name, args: []string{"pop", "--config", configPath, "--pop", p.Name}, files: files})
	}
	checkCommand(t, commandCheck{where: "README dns", args: []string{"dns", "--config", configPath}, files: files})
}

// record is one resource record of README's zone examples: owner, type,
// data, all fully qualified and lowercase.
type record struct{ owner, typ, data string }

var zoneLine = regexp.MustCompile(`^(\S+)\s+(\d+\s+)?(IN\s+)?(NS|A|AAAA|CNAME)\s+(\S+)\s*$`)

// zoneRecords parses the records of a zone-file block: $ORIGIN and lines
// of owner [ttl] [IN] type data.
func zoneRecords(t *testing.T, text string) []record {
	t.Helper()
	origin := ""
	var out []record
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if i := strings.IndexByte(line, ';'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		if o, ok := strings.CutPrefix(line, "$ORIGIN "); ok {
			origin = strings.ToLower(strings.TrimSpace(o))
			continue
		}
		m := zoneLine.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("README zone block: cannot read %q", line)
			continue
		}
		out = append(out, record{fqdn(m[1], origin), m[4], fqdn(m[5], origin)})
	}
	return out
}

// fqdn makes name fully qualified under origin (an address stays as is).
func fqdn(name, origin string) string {
	name = strings.ToLower(name)
	if _, err := netip.ParseAddr(name); err == nil || strings.HasSuffix(name, ".") {
		return name
	}
	return name + "." + origin
}

// delegation is what the parent zone must hold for the CDN file: NS
// records for the zone and A/AAAA glue for name servers inside it.
func delegation(c *config.Config) []record {
	zone := c.Zone + "."
	var out []record
	for _, ns := range c.DNS.NS {
		out = append(out, record{zone, "NS", ns.Name + "."})
		for _, a := range ns.Addresses {
			typ := "A"
			if a.Is6() {
				typ = "AAAA"
			}
			out = append(out, record{ns.Name + ".", typ, a.String()})
		}
	}
	return out
}

func sortRecords(r []record) []record {
	r = slices.Clone(r)
	slices.SortFunc(r, func(a, b record) int { return strings.Compare(a.owner+a.typ+a.data, b.owner+b.typ+b.data) })
	return r
}

// TestReadmeDelegation checks that the parent zone records README shows,
// as a zone file and as a DNS provider's table, are exactly the NS records
// and glue that the CDN file's dns.ns needs; and that the site's CNAME
// points at a hostname of the service that serves the site.
func TestReadmeDelegation(t *testing.T) {
	c := readmeCDN(t)
	want := sortRecords(delegation(c))

	parentText := readmeBlock(t, "$ORIGIN ")
	parentOrigin := strings.TrimSpace(strings.TrimPrefix(strings.SplitN(parentText, "\n", 2)[0], "$ORIGIN "))
	if !strings.HasSuffix(c.Zone+".", "."+parentOrigin) {
		t.Fatalf("README's parent zone %q is not the parent of zone %q", parentOrigin, c.Zone)
	}
	if got := sortRecords(zoneRecords(t, parentText)); !slices.Equal(got, want) {
		t.Errorf("README's parent zone file has\n%v\nwant (from dns.ns)\n%v", got, want)
	}

	// The provider's table: | type | `name` | `value` | ttl |, names
	// relative to the parent zone.
	row := regexp.MustCompile("(?m)^\\| (NS|A|AAAA) \\| `([^`]+)` \\| `([^`]+)` \\| \\d+ \\|$")
	var table []record
	for _, m := range row.FindAllStringSubmatch(string(readFile(t, "README.md")), -1) {
		table = append(table, record{fqdn(m[2], parentOrigin), m[1], fqdn(m[3], parentOrigin)})
	}
	if got := sortRecords(table); !slices.Equal(got, want) {
		t.Errorf("README's DNS provider table has\n%v\nwant (from dns.ns)\n%v", got, want)
	}

	// The site's CNAME: owner and target are hostnames of one service, the
	// target inside the zone (so the Outpost DNS answers it).
	var cnames []record
	for _, b := range readmeBlocks(t) {
		if b.lang == "dns" && !strings.HasPrefix(b.text, "$ORIGIN ") {
			cnames = append(cnames, zoneRecords(t, b.text)...)
		}
	}
	if len(cnames) == 0 {
		t.Fatal("README shows no CNAME for a site")
	}
	for _, r := range cnames {
		owner, target := strings.TrimSuffix(r.owner, "."), strings.TrimSuffix(r.data, ".")
		so, ok1 := c.ServiceByHost(owner)
		st, ok2 := c.ServiceByHost(target)
		switch {
		case r.typ != "CNAME":
			t.Errorf("site record %v: want a CNAME", r)
		case !ok1 || !ok2 || so.Name != st.Name:
			t.Errorf("CNAME %s → %s: both must be hostnames of one service in the CDN file", owner, target)
		case !strings.HasSuffix(target, "."+c.Zone):
			t.Errorf("CNAME target %s is outside zone %s", target, c.Zone)
		}
	}
}
