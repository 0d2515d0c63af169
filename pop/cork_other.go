//go:build !linux

package pop

// setCork does nothing where TCP_CORK is missing.
func (c *sendfileConn) setCork(bool) {}
