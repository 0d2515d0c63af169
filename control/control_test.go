package control_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/control"
	"github.com/outpost-cdn/outpost/control/bus"
	"github.com/outpost-cdn/outpost/popapi"
)

// users are the bus users of the tests: an operator, a pop user per PoP
// (password "<pop>-pw") and a dns user.
func users(pops ...string) []bus.User {
	u := []bus.User{{Name: "ops", Password: "ops-pw", Role: config.RoleOperator}, {Name: "ns1", Password: "ns1-pw", Role: config.RoleDNS}}
	for _, p := range pops {
		u = append(u, bus.User{Name: p, Password: p + "-pw", Role: config.RolePoP, PoP: p})
	}
	return u
}

var operator = control.Identity{Role: config.RoleOperator}

func popID(name string) control.Identity { return control.Identity{Role: config.RolePoP, Name: name} }

// TestPermissions checks that the server refuses what a role may not do:
// a pop or dns credential cannot publish a purge or a config revision, nor
// another PoP's state, while the operator can.
func TestPermissions(t *testing.T) {
	s := startBus(t, users("prg", "iad"))
	dir := t.TempDir()
	path := cdnFile(t, dir, s.ClientURL(), []string{"prg", "iad"}, "")
	cfg := loadCDN(t, path)
	ops := dial(t, cfg.Control, operator, "ops", "ops-pw")
	tests := []struct {
		name     string
		id       control.Identity
		user     string
		mayWrite bool
	}{
		{"operator publishes purges and config", operator, "ops", true},
		{"a pop credential cannot", popID("prg"), "prg", false},
		{"a dns credential cannot", control.Identity{Role: config.RoleDNS, Name: "ns1"}, "ns1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			violations := make(chan error, 16)
			cc := cfg.Control
			if !tt.mayWrite {
				// A refused publish gets no answer: do not wait long for
				// it. The operator keeps the file's timeout: its push and
				// purge must be answered, which under -race on a loaded
				// machine can take more than 300 ms.
				cc.Timeout = 300 * time.Millisecond
			}
			nc, err := nats.Connect(s.ClientURL(), nats.UserInfo(tt.user, tt.user+"-pw"),
				nats.CustomInboxPrefix(inboxOf(tt.id)),
				nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
			if err != nil {
				t.Fatal(err)
			}
			conn, err := control.NewConn(nc, &cc, tt.id, quiet)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			before, err := ops.CurrentConfig(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(path)
			_, pushErr := conn.PushConfig(context.Background(), data)
			rep, purgeErr := conn.Purge(context.Background(), popapi.PurgeRequest{ID: "p1" + strings.ReplaceAll(tt.user, "-", ""), URL: "http://demo.example/x"}, nil, 100*time.Millisecond)
			if err := nc.Publish(control.StatePopSubject("iad"), []byte(`{"pop":"iad","healthy":false}`)); err != nil {
				t.Fatal(err)
			}
			after, err := ops.CurrentConfig(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if tt.mayWrite {
				if pushErr != nil || purgeErr != nil || after.Number != before.Number+1 || rep.Seq == 0 {
					t.Fatalf("operator: push %v, purge %v (seq %d), revision %d -> %d", pushErr, purgeErr, rep.Seq, before.Number, after.Number)
				}
				return
			}
			if pushErr == nil || purgeErr == nil {
				t.Errorf("push: %v, purge: %v; want both refused", pushErr, purgeErr)
			}
			if after.Number != before.Number {
				t.Errorf("config revision %d -> %d: the push went through", before.Number, after.Number)
			}
			var got []string
			waitFor(t, 2*time.Second, "the server reports permission violations for the purge, the config and the other PoP's state", func() bool {
				for {
					select {
					case err := <-violations:
						if errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
							got = append(got, err.Error())
						}
						continue
					default:
					}
					break
				}
				return slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, control.PurgeSubject) }) &&
					slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, "$KV."+control.ConfigBucket) }) &&
					slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, control.StatePopSubject("iad")) })
			})
			t.Logf("refused: %s", strings.Join(got, "; "))
		})
	}
}

// inboxOf mirrors the client's inbox prefix per role (see Dial).
func inboxOf(id control.Identity) string {
	switch id.Role {
	case config.RolePoP:
		return "_INBOX.pop." + id.Name
	case config.RoleDNS:
		return "_INBOX.dns"
	}
	return "_INBOX"
}
