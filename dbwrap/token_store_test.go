package dbwrap_test

import (
	"testing"

	"github.com/reqcanary/canary/dbwrap"
	"github.com/reqcanary/canary/dbwrap/tokenstoretest"
)

func TestMemoryTokenStore(t *testing.T) {
	t.Parallel()
	tokenstoretest.Contract(t, dbwrap.NewMemoryTokenStore(), "3:acme:u1")
}
