package middleware

import (
	"net/http"
	"strings"

	"github.com/reqcanary/canary/tenant"
)

// wireHeaders are the canonical names of the headers the transport sets or
// removes. A header map built by hand (req.Header["x-user-id"] = …) can hold
// them under other spellings, which net/http sends as they are and a server
// reads as the same header.
var wireHeaders = [...]string{canonUser, canonTenant, tenant.HeaderOverride, tenant.HeaderDecision,
	tenant.HeaderBaggage, tenant.HeaderTraceParent, tenant.HeaderConsistency}

// foldWireHeaders rewrites h, an outgoing request's own copy, so that the
// headers the transport writes appear only under their canonical names: a
// non-canonical spelling of X-User-ID is removed (the raw user id never
// leaves the edge, however its key is spelt), and the values under
// non-canonical spellings of the other names are moved to the canonical
// name, where Propagate replaces or merges them as usual. It allocates only
// when it finds such a spelling.
func foldWireHeaders(h http.Header) {
	for k, vs := range h {
		for _, name := range wireHeaders {
			if len(k) != len(name) || k == name || !strings.EqualFold(k, name) {
				continue
			}
			delete(h, k)
			if name != canonUser {
				h[name] = append(h[name], vs...)
			}
			break
		}
	}
}
