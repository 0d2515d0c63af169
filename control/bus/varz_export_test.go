package bus

import "github.com/nats-io/nats-server/v2/server"

// Varz returns the server's /varz figures (messages and payload bytes in
// and out since it started).
func (s *Server) Varz() (*server.Varz, error) { return s.ns.Varz(&server.VarzOptions{}) }
