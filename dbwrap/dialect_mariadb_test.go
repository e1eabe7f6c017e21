package dbwrap

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
)

func TestGTIDSeq(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		list   string
		domain uint32
		seq    uint64
		ok     bool
		err    bool
	}{
		{"", 0, 0, false, false},
		{"0-1-42", 0, 42, true, false},
		{"0-1-42", 1, 0, false, false},
		{"0-1-42,1-2-7", 1, 7, true, false},
		{" 0-1-42 , 1-2-7 ", 0, 42, true, false},
		{"0-1-18446744073709551615", 0, 18446744073709551615, true, false},
		{"4294967295-1-3", 4294967295, 3, true, false},
		{"0-1", 0, 0, false, true},
		{"0-1-x", 0, 0, false, true},
		{"a-1-2", 0, 0, false, true},
		{"0-1-2-3", 0, 0, false, true},
		{"4294967296-1-3", 0, 0, false, true},
	} {
		seq, ok, err := gtidSeq(c.list, c.domain)
		if seq != c.seq || ok != c.ok || (err != nil) != c.err {
			t.Errorf("gtidSeq(%q, %d) = %d, %v, %v; want %d, %v, error %v", c.list, c.domain, seq, ok, err, c.seq, c.ok, c.err)
		}
	}
}

// FuzzGTIDSeq checks that gtidSeq never panics, and that a list it accepts
// gives back the sequence number of the domain's GTID as written.
func FuzzGTIDSeq(f *testing.F) {
	for _, s := range []string{"", "0-1-42", "0-1-42,1-2-7", "1-2-3,", ",,", "0-1-", "9-9-99999999999999999999"} {
		f.Add(s, uint32(0))
	}
	f.Fuzz(func(t *testing.T, list string, domain uint32) {
		seq, ok, err := gtidSeq(list, domain)
		if err != nil {
			if ok || seq != 0 {
				t.Fatalf("gtidSeq(%q) = %d, %v with error %v", list, seq, ok, err)
			}
			return
		}
		if !ok {
			if seq != 0 || strings.Contains(","+strings.ReplaceAll(list, " ", ""), ","+strconv.FormatUint(uint64(domain), 10)+"-") {
				t.Fatalf("gtidSeq(%q, %d) = %d, not found", list, domain, seq)
			}
			return
		}
		// The canonical form of what it found reads back the same.
		canon := fmt.Sprintf("%d-1-%d", domain, seq)
		if s2, ok2, err2 := gtidSeq(canon, domain); s2 != seq || !ok2 || err2 != nil {
			t.Fatalf("gtidSeq(%q) = %d, but gtidSeq(%q) = %d, %v, %v", list, seq, canon, s2, ok2, err2)
		}
	})
}

func TestMariaDBErrors(t *testing.T) {
	t.Parallel()
	d := MariaDB()
	ro := &mysql.MySQLError{Number: 1290, Message: "The MariaDB server is running with the --read-only option"}
	if !d.IsReadOnlyError(fmt.Errorf("query: %w", ro)) || d.IsConnError(ro) {
		t.Errorf("1290: read-only %v, conn %v; want read-only only", d.IsReadOnlyError(ro), d.IsConnError(ro))
	}
	if !d.IsReadOnlyError(&mysql.MySQLError{Number: 1836}) {
		t.Error("1836 (ER_READ_ONLY_MODE) is not a read-only refusal")
	}
	for _, err := range []error{mysql.ErrInvalidConn, &mysql.MySQLError{Number: 1053}, &mysql.MySQLError{Number: 1927}, &mysql.MySQLError{Number: 1040}} {
		if !d.IsConnError(err) || d.IsReadOnlyError(err) {
			t.Errorf("%v: conn %v, read-only %v; want a connection error", err, d.IsConnError(err), d.IsReadOnlyError(err))
		}
	}
	for _, err := range []error{&mysql.MySQLError{Number: 1062, Message: "Duplicate entry"}, errors.New("syntax")} {
		if d.IsConnError(err) || d.IsReadOnlyError(err) {
			t.Errorf("%v: classified as conn %v / read-only %v", err, d.IsConnError(err), d.IsReadOnlyError(err))
		}
	}
	if d.System() != "mariadb" || dialectFor("mysql") == nil || dialectFor("mysql").System() != "mariadb" {
		t.Errorf("the driver name mysql does not pick the MariaDB dialect")
	}
}
