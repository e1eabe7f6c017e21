package tenant

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestReadTenant(t *testing.T) {
	for _, tc := range []struct {
		name    string
		h       http.Header
		want    string
		wantErr string
	}{
		{"absent", header(), "", ""},
		{"valid", header("X-Tenant-ID", "acme-1.eu:prod_2"), "acme-1.eu:prod_2", ""},
		{"empty", header("X-Tenant-ID", ""), "", "X-Tenant-ID: empty"},
		{"too long", header("X-Tenant-ID", strings.Repeat("a", 65)), "", "X-Tenant-ID: longer than 64 bytes"},
		{"64 is fine", header("X-Tenant-ID", strings.Repeat("a", 64)), strings.Repeat("a", 64), ""},
		{"slash", header("X-Tenant-ID", "acme/evil"), "", "X-Tenant-ID: byte 4 is not one of [A-Za-z0-9._:-]"},
		{"space", header("X-Tenant-ID", "ac me"), "", "X-Tenant-ID: byte 2 is not one of [A-Za-z0-9._:-]"},
		{"unicode", header("X-Tenant-ID", "acmé"), "", "X-Tenant-ID: byte 3 is not one of [A-Za-z0-9._:-]"},
		{"repeated", header("X-Tenant-ID", "a", "X-Tenant-ID", "b"), "", "X-Tenant-ID: more than one value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadTenant(tc.h, HTTP)
			checkRead(t, got, err, tc.want, tc.wantErr, HeaderTenant)
		})
	}
}

func TestReadUser(t *testing.T) {
	for _, tc := range []struct {
		name    string
		h       http.Header
		want    string
		wantErr string
	}{
		{"absent", header(), "", ""},
		{"email", header("X-User-ID", "jon@company.com"), "jon@company.com", ""},
		{"spaces and unicode", header("X-User-ID", "Jürgen Müller"), "Jürgen Müller", ""},
		{"empty", header("X-User-ID", ""), "", "X-User-ID: empty"},
		{"too long", header("X-User-ID", strings.Repeat("u", 257)), "", "X-User-ID: longer than 256 bytes"},
		{"256 is fine", header("X-User-ID", strings.Repeat("u", 256)), strings.Repeat("u", 256), ""},
		{"tab", header("X-User-ID", "a\tb"), "", "X-User-ID: contains a control character at byte 1"},
		{"DEL", header("X-User-ID", "a\x7f"), "", "X-User-ID: contains a control character at byte 1"},
		{"C1 control", header("X-User-ID", "a\u0085"), "", "X-User-ID: contains a control character at byte 1"},
		{"bad utf-8", header("X-User-ID", "a\xff"), "", "X-User-ID: not valid UTF-8 at byte 1"},
		{"repeated", header("X-User-ID", "a", "X-User-ID", "a"), "", "X-User-ID: more than one value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadUser(tc.h, HTTP)
			checkRead(t, got, err, tc.want, tc.wantErr, HeaderUser)
		})
	}
}

func checkRead(t *testing.T, got string, err error, want, wantErr, field string) {
	t.Helper()
	if wantErr == "" {
		if err != nil || got != want {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
		return
	}
	if err == nil || err.Error() != wantErr {
		t.Fatalf("error = %v, want %q", err, wantErr)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != field || !errors.Is(err, ErrInvalidField) {
		t.Fatalf("error %v is not a *FieldError for %s matching ErrInvalidField", err, field)
	}
}

func TestReadOverride(t *testing.T) {
	for _, tc := range []struct {
		v       []string
		want    Cohort
		wantErr bool
	}{
		{nil, "", false},
		{[]string{"canary"}, Canary, false},
		{[]string{" Stable "}, Stable, false},
		{[]string{"CANARY"}, Canary, false},
		{[]string{"insider"}, "", true},
		{[]string{""}, "", true},
		{[]string{"canary", "stable"}, "", true},
	} {
		h := http.Header{}
		for _, v := range tc.v {
			h.Add("X-Canary", v)
		}
		got, err := ReadOverride(h, "X-Canary")
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("ReadOverride(%q) = %q, %v", tc.v, got, err)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "X-Canary: ") {
			t.Errorf("error %q does not name the header", err)
		}
	}
}

func TestGRPCWireIsLowercase(t *testing.T) {
	if GRPC.Tenant != "x-tenant-id" || GRPC.User != "x-user-id" || GRPC.Override != "x-canary" ||
		GRPC.Decision != "x-canary-decision" || GRPC.TraceParent != "traceparent" {
		t.Fatalf("GRPC wire names: %+v", GRPC)
	}
	if GRPC.Key("X-Rollout") != "x-rollout" || HTTP.Key("X-Rollout") != "X-Rollout" {
		t.Fatal("Wire.Key does not follow the transport's case")
	}
}

func TestParseCohort(t *testing.T) {
	if c, err := ParseCohort("canary"); err != nil || c != Canary {
		t.Fatal(c, err)
	}
	if _, err := ParseCohort("Canary"); !errors.Is(err, ErrInvalidField) {
		t.Fatalf("ParseCohort(Canary) error = %v", err)
	}
}

func TestParseTraceParent(t *testing.T) {
	const id = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, tc := range []struct {
		v    string
		want string
	}{
		{"00-" + id + "-00f067aa0ba902b7-01", id},
		{"00-" + id + "-00f067aa0ba902b7-00", id},
		{" 00-" + id + "-00f067aa0ba902b7-01 ", id},
		{"01-" + id + "-00f067aa0ba902b7-01-future", id},
		{"00-" + id + "-00f067aa0ba902b7-01-extra", ""},
		{"ff-" + id + "-00f067aa0ba902b7-01", ""},
		{"00-" + strings.ToUpper(id) + "-00f067aa0ba902b7-01", ""},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""},
		{"00-" + id + "-0000000000000000-01", ""},
		{"00-" + id + "-00f067aa0ba902b7", ""},
		{"00_" + id + "_00f067aa0ba902b7_01", ""},
		{"", ""},
	} {
		got, ok := ParseTraceParent(tc.v)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("ParseTraceParent(%q) = %q, %v; want %q", tc.v, got, ok, tc.want)
		}
	}
}
