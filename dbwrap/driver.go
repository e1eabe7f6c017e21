package dbwrap

import "database/sql/driver"

var _ driver.Driver = (*wrapDriver)(nil)

// wrapDriver is what sql.DB.Driver returns for a dbwrap database. It opens
// nothing by name: the routing needs the whole Config.
type wrapDriver struct {
	c     *connector
	inner driver.Driver
}

// Open always fails with ErrOpenByName.
func (d *wrapDriver) Open(string) (driver.Conn, error) { return nil, ErrOpenByName }
