package tenant

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzVerifyDecision checks that the decision parser never panics, accepts a
// value only when its MAC verifies under the key, rejects with exactly one
// sentinel, and that what it accepts re-encodes to the same bytes.
func FuzzVerifyDecision(f *testing.F) {
	s := newSigner(f, decisionKey)
	f.Add(goldenDecision, int64(0))
	f.Add(strings.Replace(goldenDecision, "c=canary", "c=stable", 1), int64(0))
	f.Add(goldenDecision, int64(1<<40))
	for _, d := range []Decision{
		{Cohort: Stable, Bucket: NoBucket, Expires: time.Unix(1, 0)},
		{Cohort: Canary, Bucket: 9999, Tenant: "t:1.x_y-z", UserHash: strings.Repeat("a", 32), Reason: "r-1", PlanVersion: 99, Expires: decisionExp},
	} {
		v, _ := s.Sign(d)
		f.Add(v, int64(-1<<40))
	}
	f.Add("v2;c=canary;b=1", int64(0))
	f.Add("v1;c=canary;b=1;t=;u=;r=;p=0;e=1;s=", int64(0))
	f.Fuzz(func(t *testing.T, v string, offset int64) {
		now := decisionNow.Add(time.Duration(offset))
		d, err := s.Verify(v, now)
		if err != nil {
			n := 0
			for _, sentinel := range []error{ErrDecisionMalformed, ErrDecisionVersion, ErrDecisionSignature, ErrDecisionExpired} {
				if errors.Is(err, sentinel) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("Verify(%q) error %v matches %d sentinels, want 1", v, err, n)
			}
			return
		}
		// Accepted: the MAC must verify, computed independently.
		i := strings.LastIndex(v, ";s=")
		if i < 0 {
			t.Fatalf("accepted %q without a MAC", v)
		}
		mac := hmac.New(sha256.New, decisionKey)
		mac.Write([]byte(v[:i+1]))
		if want := base64.RawURLEncoding.EncodeToString(mac.Sum(nil)); v[i+3:] != want {
			t.Fatalf("accepted %q whose MAC does not verify (want %s)", v, want)
		}
		if !now.Before(d.Expires) {
			t.Fatalf("accepted %q expired at %v, now %v", v, d.Expires, now)
		}
		if err := d.Validate(); err != nil {
			t.Fatalf("accepted %q with invalid fields: %v", v, err)
		}
		again, err := s.Sign(d)
		if err != nil || again != v {
			t.Fatalf("accepted %q but it re-encodes as %q, %v", v, again, err)
		}
	})
}

// FuzzSignDecision checks that every decision Sign accepts verifies back to
// itself, and that Sign rejects only with ErrDecisionMalformed.
func FuzzSignDecision(f *testing.F) {
	s := newSigner(f, decisionKey)
	f.Add("canary", 1234, "acme", "0f1e2d3c4b5a69788796a5b4c3d2e1f0", "percent", 7, int64(1767225600))
	f.Add("stable", -1, "", "", "", 0, int64(1))
	f.Add("canary", 10000, "a;b", "X", "Bad Reason", -1, int64(0))
	f.Fuzz(func(t *testing.T, cohort string, bucket int, tenantID, userHash, reason string, plan int, exp int64) {
		d := Decision{Cohort: Cohort(cohort), Bucket: bucket, Tenant: tenantID, UserHash: userHash,
			Reason: reason, PlanVersion: plan, Expires: time.Unix(exp, 0)}
		v, err := s.Sign(d)
		if err != nil {
			if !errors.Is(err, ErrDecisionMalformed) {
				t.Fatalf("Sign(%+v) error %v is not ErrDecisionMalformed", d, err)
			}
			return
		}
		if len(v) > MaxDecisionLen {
			t.Fatalf("Sign(%+v) = %d bytes", d, len(v))
		}
		got, err := s.Verify(v, d.Expires.Add(-time.Second))
		if err != nil || !sameDecision(got, d) {
			t.Fatalf("Sign(%+v) = %q, which verifies as %+v, %v", d, v, got, err)
		}
	})
}
