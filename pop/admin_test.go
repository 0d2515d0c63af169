package pop

import (
	"net/http"
	"strings"
	"testing"
)

// TestAdminCredentials checks what AdminHandler documents: the GET
// endpoints need no credentials, POST /purge needs the purge token as a
// bearer token (RFC 6750).
func TestAdminCredentials(t *testing.T) {
	o := &rfcOrigin{}
	tp := startPoP(t, newTestOrigin(t, o.ServeHTTP).URL)
	const purgeBody = `{"url":"http://demo.example/x"}`
	tests := []struct {
		name     string
		method   string
		path     string
		token    string // sent as Authorization: Bearer, "" for none
		body     string
		wantCode int
		wantAuth string // WWW-Authenticate of the answer
	}{
		{"GET /healthz needs no token", http.MethodGet, "/healthz", "", "", 200, ""},
		{"GET /stats needs no token", http.MethodGet, "/stats", "", "", 200, ""},
		{"GET /metrics needs no token", http.MethodGet, "/metrics", "", "", 200, ""},
		{"RFC6750 3 POST /purge without a token is refused", http.MethodPost, "/purge", "", purgeBody, 401, `Bearer realm="outpost purge"`},
		{"RFC6750 3 POST /purge with a wrong token is refused", http.MethodPost, "/purge", "guess", purgeBody, 401, `Bearer realm="outpost purge"`},
		{"POST /purge with the purge token purges", http.MethodPost, "/purge", "s3cret", purgeBody, 200, ""},
		{"RFC9110 15.5.6 GET /purge is not a purge", http.MethodGet, "/purge", "s3cret", "", 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := tp.adminRequest(t, tt.method, tt.path, tt.token, tt.body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantCode {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.wantCode)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tt.wantAuth {
				t.Errorf("WWW-Authenticate %q, want %q", got, tt.wantAuth)
			}
		})
	}
}

// adminRequest sends method path, with body, to the PoP's admin listener,
// and token as a bearer token (RFC 6750) unless it is "", and returns the
// answer; the caller closes its body.
func (tp *testPoP) adminRequest(t *testing.T, method, path, token, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, tp.admin+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := tp.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}
