package dnsgeo

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestDig drives the server with dig, as an operator would (the README's
// commands). CI installs dig (Debian's dnsutils); elsewhere the test is
// skipped without it.
func TestDig(t *testing.T) {
	digPath, err := exec.LookPath("dig")
	if err != nil {
		t.Skip("dig not found: install it (Debian/Ubuntu: apt-get install dnsutils) to run this test")
	}
	ts, _ := startLab(t, steady)
	host, port, _ := net.SplitHostPort(ts.udp)
	tests := []struct {
		name string
		args []string
		want []string // substrings of the output
	}{
		{"ECS Frankfurt → prg, scope 24", []string{"demo.cdn.example", "+subnet=198.51.100.7/24"},
			[]string{"status: NOERROR", "flags: qr aa rd;", "CLIENT-SUBNET: 198.51.100.0/24/24", "demo.cdn.example.\t30\tIN\tA\t127.0.0.11"}},
		{"ECS Osaka over TCP → nrt", []string{"demo.cdn.example", "+subnet=203.0.113.9/24", "+tcp"},
			[]string{"demo.cdn.example.\t30\tIN\tA\t127.0.0.13", "(TCP)"}},
		{"+short", []string{"demo.cdn.example", "+subnet=192.0.2.1/24", "+short"}, []string{"127.0.0.12"}},
		{"source prefix 0", []string{"demo.cdn.example", "+subnet=0"}, []string{"CLIENT-SUBNET: 0.0.0.0/0/0", "127.0.0.11"}},
		{"NXDOMAIN", []string{"nope.cdn.example"}, []string{"status: NXDOMAIN", "cdn.example.\t\t60\tIN\tSOA\tns1.cdn.example. hostmaster.cdn.example. 1 3600 900 604800 60"}},
		{"REFUSED", []string{"example.com"}, []string{"status: REFUSED"}},
		{"BADVERS (dig told not to retry with version 0)", []string{"demo.cdn.example", "+edns=1", "+noednsnegotiation"}, []string{"status: BADVERS"}},
		{"case kept", []string{"DEMO.Cdn.Example"}, []string{"DEMO.Cdn.Example.\t30\tIN\tA"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			args := append([]string{"@" + host, "-p", port, "+tries=1", "+time=3"}, tt.args...)
			out, err := exec.CommandContext(ctx, digPath, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("dig %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("dig %s: output lacks %q:\n%s", strings.Join(args, " "), w, out)
				}
			}
		})
	}
}
