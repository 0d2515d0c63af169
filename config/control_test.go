package config

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// TestControlSection checks the control section's defaults and values;
// its errors are golden files (testdata/errors/control-*).
func TestControlSection(t *testing.T) {
	const head = `services:
  - {name: demo, hostnames: [demo.example], origin: {servers: [{url: "http://127.0.0.1:8000"}]}}
pops:
  - {name: prg, location: {lat: 1, lon: 2}, listen: ":8081", admin: ":9081"}
`
	dir := t.TempDir()
	abs := func(name string) string { return filepath.Join(dir, name) }
	defaults := Control{
		Timeout: 2 * time.Second, PurgeTimeout: 5 * time.Second, StatsTimeout: 2 * time.Second,
		StatsMaxReplies: 1000, ReconnectWait: 100 * time.Millisecond, ReconnectMaxWait: 5 * time.Second,
		MaxPending: 4096, StateInterval: time.Second, Replicas: 1, PurgeHistory: 168 * time.Hour,
	}
	with := func(f func(c *Control)) Control {
		c := defaults
		f(&c)
		return c
	}
	tests := []struct {
		name string
		in   string
		env  string
		want Control
	}{
		{"no section: no bus", "", "", Control{}},
		{"servers only: every default", "control: {servers: [nats://127.0.0.1:4222]}\n", "",
			with(func(c *Control) { c.Servers = []string{"nats://127.0.0.1:4222"} })},
		{"a bare host:port is nats://", "control: {servers: [\"bus1:4222\", tls://bus2:4222]}\n", "",
			with(func(c *Control) { c.Servers = []string{"nats://bus1:4222", "tls://bus2:4222"} })},
		{"tls makes every server tls://", "control:\n  servers: [nats://bus1:4222]\n  tls: {ca_file: ca.pem, cert_file: c.pem, key_file: c.key}\n  creds_file: pop.creds\n", "",
			with(func(c *Control) {
				c.Servers = []string{"tls://bus1:4222"}
				c.TLS = ControlTLS{CAFile: abs("ca.pem"), CertFile: abs("c.pem"), KeyFile: abs("c.key")}
				c.CredsFile = abs("pop.creds")
			})},
		{"every bound", `control:
  servers: [nats://127.0.0.1:4222]
  user: ops
  password_file: /etc/outpost/bus.password
  timeout: 1s
  purge_timeout: 3s
  stats_timeout: 1500ms
  stats_max_replies: 10
  reconnect_wait: 50ms
  reconnect_max_wait: 2s
  max_pending: 64
  state_interval: 500ms
  replicas: 3
  purge_history: 24h
`, "", Control{
			Servers: []string{"nats://127.0.0.1:4222"}, User: "ops", PasswordFile: "/etc/outpost/bus.password",
			Timeout: time.Second, PurgeTimeout: 3 * time.Second, StatsTimeout: 1500 * time.Millisecond, StatsMaxReplies: 10,
			ReconnectWait: 50 * time.Millisecond, ReconnectMaxWait: 2 * time.Second, MaxPending: 64,
			StateInterval: 500 * time.Millisecond, Replicas: 3, PurgeHistory: 24 * time.Hour,
		}},
		{"$OUTPOST_CONTROL_USER overrides user", "control: {servers: [nats://127.0.0.1:4222], user: ops, password_file: pw}\n", "prg",
			with(func(c *Control) {
				c.Servers = []string{"nats://127.0.0.1:4222"}
				c.User, c.PasswordFile = "prg", abs("pw")
			})},
		{"embedded server with a cluster and users", `control:
  servers: [nats://n1:4222, nats://n2:4222, nats://n3:4222]
  server:
    listen: 0.0.0.0:4222
    store_dir: nats
    cluster: {listen: 0.0.0.0:6222, routes: [nats-route://n1:6222, nats-route://n2:6222, nats-route://n3:6222]}
    tls: {cert_file: s.pem, key_file: s.key}
    users:
      - {user: ops, password_file: ops.pw, role: operator}
      - {user: prg, password_file: prg.pw, role: pop}
      - {user: edge1, password_file: e.pw, role: pop, pop: prg}
      - {user: ns1, password_file: ns1.pw, role: dns}
`, "", with(func(c *Control) {
			c.Servers = []string{"nats://n1:4222", "nats://n2:4222", "nats://n3:4222"}
			c.Server = &ControlServer{
				Listen: "0.0.0.0:4222", StoreDir: abs("nats"),
				Cluster: ControlCluster{Name: "outpost", Listen: "0.0.0.0:6222",
					Routes: []string{"nats-route://n1:6222", "nats-route://n2:6222", "nats-route://n3:6222"}},
				TLS: ControlServerTLS{CertFile: abs("s.pem"), KeyFile: abs("s.key")},
				Users: []ControlUser{
					{User: "ops", PasswordFile: abs("ops.pw"), Role: RoleOperator},
					{User: "prg", PasswordFile: abs("prg.pw"), Role: RolePoP, PoP: "prg"},
					{User: "edge1", PasswordFile: abs("e.pw"), Role: RolePoP, PoP: "prg"},
					{User: "ns1", PasswordFile: abs("ns1.pw"), Role: RoleDNS},
				},
			}
		})},
		{"server defaults", "control:\n  servers: [nats://127.0.0.1:4222]\n  server: {store_dir: /var/lib/outpost/nats}\n", "",
			with(func(c *Control) {
				c.Servers = []string{"nats://127.0.0.1:4222"}
				c.Server = &ControlServer{Listen: "127.0.0.1:4222", StoreDir: "/var/lib/outpost/nats", Cluster: ControlCluster{Name: "outpost"}}
			})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(ControlUserEnv, tt.env)
			c, err := Parse(filepath.Join(dir, "cdn.yaml"), []byte(head+tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Control, tt.want) {
				t.Errorf("control:\n got %+v\nwant %+v", c.Control, tt.want)
			}
			if got, want := c.Control.Enabled(), tt.in != ""; got != want {
				t.Errorf("Enabled() = %v, want %v", got, want)
			}
		})
	}
}
